/* Internal definitions shared by every module: the context, device and buffer objects, logging, allocation. */
#ifndef FP8_INTERNAL_H
#define FP8_INTERNAL_H

#include "fp8.h"

#include <stdarg.h>
#include <stdbool.h>

struct fp8i_backend;

#define FP8I_MAX_DEVICES 32

/* One enumerated device: its record, the verdict, and whatever the backend needs to open it. */
typedef struct fp8i_device_entry {
    const struct fp8i_backend *backend;
    fp8_device_info info;
    fp8_device_verdict verdict;
    uint32_t backend_index; /* the backend's own index for this device (physical device / cl device) */
} fp8i_device_entry;

struct fp8_context {
    fp8_context_options options;
    fp8_allocator allocator;
    char cache_dir[512];          /* empty: no disk cache */
    uint32_t device_count;
    fp8i_device_entry devices[FP8I_MAX_DEVICES];
    void *backend_state[4];       /* per fp8_backend value, owned by the backend (instance, platform list) */
    uint32_t open_devices;
    /* per fp8_backend value: what enumeration found, and why (fp8_context_backend_status) */
    fp8_backend_state backend_status[4];
    char backend_why[4][FP8_REASON_MAX];
};

struct fp8_device {
    fp8_context *ctx;
    const struct fp8i_backend *backend;
    const fp8i_device_entry *entry;
    fp8_path forced_path;         /* from FP8_PATH, AUTO if unset */
    uint32_t live_buffers;
    void *impl;                   /* backend state */
};

struct fp8_buffer {
    fp8_device *dev;
    size_t size;
    void *impl;                   /* backend state; for the CPU, the host memory itself */
};

/* Logging: formats only when the level passes the context's threshold. */
void fp8i_log(const fp8_context *ctx, fp8_log_level level, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;
#define FP8I_DEBUG(ctx, ...) fp8i_log((ctx), FP8_LOG_DEBUG, __VA_ARGS__)
#define FP8I_INFO(ctx, ...) fp8i_log((ctx), FP8_LOG_INFO, __VA_ARGS__)
#define FP8I_WARN(ctx, ...) fp8i_log((ctx), FP8_LOG_WARN, __VA_ARGS__)
#define FP8I_ERROR(ctx, ...) fp8i_log((ctx), FP8_LOG_ERROR, __VA_ARGS__)

/* Log `status` with a reason at ERROR level and return it: `return FP8I_FAIL(ctx, FP8_ERR_SHAPE, "...")`. */
fp8_status fp8i_fail(const fp8_context *ctx, fp8_status status, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;
#define FP8I_FAIL(ctx, status, ...) fp8i_fail((ctx), (status), __VA_ARGS__)

/* Host allocation through the context's allocator (zeroed by fp8i_calloc). */
void *fp8i_malloc(const fp8_context *ctx, size_t size);
void *fp8i_calloc(const fp8_context *ctx, size_t count, size_t size);
void fp8i_free(const fp8_context *ctx, void *ptr);

/* Overflow-checked size arithmetic: return false on overflow and leave *out untouched. */
static inline bool fp8i_mul_size(size_t a, size_t b, size_t *out)
{
    if (a != 0 && b > SIZE_MAX / a) return false;
    *out = a * b;
    return true;
}
static inline bool fp8i_add_size(size_t a, size_t b, size_t *out)
{
    if (b > SIZE_MAX - a) return false;
    *out = a + b;
    return true;
}

/* Environment flag set to a true value ("1", "true", "yes", "on"). */
bool fp8i_env_flag(const char *name);
bool fp8i_env_off(const char *name); /* set to 0, false, no or off: a default turned off */

/* Safe bounded string copy that always terminates. */
void fp8i_strlcpy(char *dst, const char *src, size_t dst_size);

/* Record what a backend's enumeration found, for fp8_context_backend_status. A backend calls this
 * when it has no driver or no device; the context fills in READY/NO_DEVICE/DISABLED itself. */
void fp8i_backend_note(fp8_context *ctx, fp8_backend backend, fp8_backend_state state, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 4, 5)))
#endif
    ;

#endif
