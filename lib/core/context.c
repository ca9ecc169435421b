/* Context life cycle, the device list, and opening/closing devices. */
#include "internal.h"

#include "../backend/backend.h"
#include "../device/device.h"

#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

uint32_t fp8_build_features(void)
{
    uint32_t f = 0;
#ifdef FP8_HAVE_VULKAN
    f |= FP8_BUILD_VULKAN;
#endif
#ifdef FP8_HAVE_OPENCL
    f |= FP8_BUILD_OPENCL;
#endif
#ifdef FP8_HAVE_CLBLAST
    f |= FP8_BUILD_CLBLAST;
#endif
#ifdef FP8_HAVE_SHADER_NV_COOPMAT
    f |= FP8_BUILD_SHADER_NV_COOPMAT;
#endif
#ifdef FP8_HAVE_SHADER_KHR_COOPMAT
    f |= FP8_BUILD_SHADER_KHR_COOPMAT;
#endif
#ifdef FP8_HAVE_SHADER_FLOAT8
    f |= FP8_BUILD_SHADER_FLOAT8;
#endif
#ifdef FP8_HAVE_SHADER_INT_DOT
    f |= FP8_BUILD_SHADER_INT_DOT;
#endif
#ifdef FP8_HAVE_SHADER_NV_COOPMAT2
    f |= FP8_BUILD_SHADER_NV_COOPMAT2;
#endif
    return f;
}

static void choose_cache_dir(fp8_context *ctx)
{
    const char *dir = ctx->options.cache_dir;
    char buf[512];
    if (!dir) dir = getenv("FP8_CACHE_DIR");
    if (!dir) {
        const char *xdg = getenv("XDG_CACHE_HOME");
        const char *home = getenv("HOME");
        if (xdg && *xdg) snprintf(buf, sizeof buf, "%s/libfp8", xdg), dir = buf;
        else if (home && *home) snprintf(buf, sizeof buf, "%s/.cache/libfp8", home), dir = buf;
    }
    ctx->cache_dir[0] = '\0';
    if (!dir || !*dir) return;
    fp8i_strlcpy(ctx->cache_dir, dir, sizeof ctx->cache_dir);
    /* Best effort: a cache that cannot be created only costs compile time. */
    char path[512];
    fp8i_strlcpy(path, ctx->cache_dir, sizeof path);
    for (char *p = path + 1; *p; p++) {
        if (*p == '/') { *p = '\0'; mkdir(path, 0755); *p = '/'; }
    }
    mkdir(path, 0755);
}

fp8_status fp8_context_create(const fp8_context_options *options, fp8_context **out)
{
    if (!out) return FP8_ERR_NULL_POINTER;
    *out = NULL;
    fp8_context_options opts = {0};
    if (options) opts = *options;
    if (opts.allocator && (!opts.allocator->alloc || !opts.allocator->free)) return FP8_ERR_INVALID_ARGUMENT;

    fp8_context tmp = {0};
    tmp.options = opts;
    if (opts.allocator) tmp.allocator = *opts.allocator;
    fp8_context *ctx = fp8i_calloc(&tmp, 1, sizeof *ctx);
    if (!ctx) return FP8_ERR_OUT_OF_HOST_MEMORY;
    *ctx = tmp;
    ctx->options.allocator = NULL; /* copied into ctx->allocator; the caller's struct may go away */
    choose_cache_dir(ctx);

    for (int id = FP8_BACKEND_CPU; id <= FP8_BACKEND_OPENCL; id++)
        fp8i_backend_note(ctx, (fp8_backend)id, FP8_BACKEND_STATE_NOT_BUILT,
                          "this libfp8 was built without %s (its dependency was not found at configure time)",
                          fp8_backend_name((fp8_backend)id));
    const uint32_t features = fp8_build_features();
    for (const fp8i_backend *const *b = fp8i_backends(); *b; b++) {
        const fp8i_backend *be = *b;
        if (be->id != FP8_BACKEND_CPU) {
            const bool by_option = (opts.disable_backends & (1u << be->id)) != 0;
            if (by_option || (be->env_disable && fp8i_env_flag(be->env_disable))) {
                fp8i_backend_note(ctx, be->id, FP8_BACKEND_STATE_DISABLED, "disabled by %s%s",
                                  by_option ? "fp8_context_options.disable_backends" : be->env_disable,
                                  by_option ? "" : " in the environment");
                FP8I_INFO(ctx, "%s backend disabled", fp8_backend_name(be->id));
                continue;
            }
        }
        /* The backend notes NO_DRIVER / NO_DEVICE itself; anything it leaves is decided below. */
        ctx->backend_status[be->id] = FP8_BACKEND_STATE_NOT_BUILT;
        ctx->backend_why[be->id][0] = '\0';
        uint32_t first = ctx->device_count;
        fp8_status st = be->enumerate(ctx);
        if (st != FP8_OK) {
            /* A failing GPU backend must not take the context down: the CPU still works. */
            FP8I_WARN(ctx, "%s backend enumeration failed: %s", fp8_backend_name(be->id), fp8_status_string(st));
            fp8i_backend_note(ctx, be->id, FP8_BACKEND_STATE_FAILED, "enumeration failed: %s", fp8_status_string(st));
            ctx->device_count = first;
            if (be->shutdown) be->shutdown(ctx);
            continue;
        }
        const uint32_t added = ctx->device_count - first;
        if (added > 0)
            fp8i_backend_note(ctx, be->id, FP8_BACKEND_STATE_READY, "%u device%s", added, added == 1 ? "" : "s");
        else if (ctx->backend_status[be->id] == FP8_BACKEND_STATE_NOT_BUILT)
            fp8i_backend_note(ctx, be->id, FP8_BACKEND_STATE_NO_DEVICE, "the driver listed no device");
        for (uint32_t i = first; i < ctx->device_count; i++)
            fp8i_decide(&ctx->devices[i].info, features, &ctx->devices[i].verdict);
    }
    *out = ctx;
    return FP8_OK;
}

void fp8_context_destroy(fp8_context *ctx)
{
    if (!ctx) return;
    for (const fp8i_backend *const *b = fp8i_backends(); *b; b++)
        if ((*b)->shutdown) (*b)->shutdown(ctx);
    fp8_allocator a = ctx->allocator;
    fp8_context tmp = {0};
    tmp.allocator = a;
    fp8i_free(&tmp, ctx);
}

void fp8i_backend_note(fp8_context *ctx, fp8_backend backend, fp8_backend_state state, const char *fmt, ...)
{
    if ((unsigned)backend >= sizeof ctx->backend_status / sizeof ctx->backend_status[0]) return;
    ctx->backend_status[backend] = state;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(ctx->backend_why[backend], sizeof ctx->backend_why[backend], fmt, ap);
    va_end(ap);
}

const char *fp8_backend_state_name(fp8_backend_state state)
{
    switch (state) {
    case FP8_BACKEND_STATE_NOT_BUILT: return "not_built";
    case FP8_BACKEND_STATE_DISABLED: return "disabled";
    case FP8_BACKEND_STATE_NO_DRIVER: return "no_driver";
    case FP8_BACKEND_STATE_NO_DEVICE: return "no_device";
    case FP8_BACKEND_STATE_FAILED: return "failed";
    case FP8_BACKEND_STATE_READY: return "ready";
    }
    return "unknown";
}

fp8_status fp8_context_backend_status(const fp8_context *ctx, fp8_backend backend, fp8_backend_state *state,
                                      char *why, size_t why_size)
{
    if (!ctx) return FP8_ERR_NULL_POINTER;
    if (backend != FP8_BACKEND_CPU && backend != FP8_BACKEND_VULKAN && backend != FP8_BACKEND_OPENCL)
        return FP8_ERR_INVALID_ARGUMENT;
    if (state) *state = ctx->backend_status[backend];
    if (why && why_size) fp8i_strlcpy(why, ctx->backend_why[backend], why_size);
    return FP8_OK;
}

uint32_t fp8_context_device_count(const fp8_context *ctx) { return ctx ? ctx->device_count : 0; }

fp8_status fp8_context_device_info(const fp8_context *ctx, uint32_t index, fp8_device_info *info)
{
    if (!ctx || !info) return FP8_ERR_NULL_POINTER;
    if (index >= ctx->device_count) return FP8_ERR_NO_DEVICE;
    *info = ctx->devices[index].info;
    return FP8_OK;
}

fp8_status fp8_context_device_verdict(const fp8_context *ctx, uint32_t index, fp8_device_verdict *verdict)
{
    if (!ctx || !verdict) return FP8_ERR_NULL_POINTER;
    if (index >= ctx->device_count) return FP8_ERR_NO_DEVICE;
    *verdict = ctx->devices[index].verdict;
    return FP8_OK;
}

static bool contains_nocase(const char *hay, const char *needle)
{
    size_t n = strlen(needle);
    for (; *hay; hay++) {
        size_t i = 0;
        while (i < n && hay[i] && tolower((unsigned char)hay[i]) == tolower((unsigned char)needle[i])) i++;
        if (i == n) return true;
    }
    return n == 0;
}

fp8_status fp8_context_find_device(const fp8_context *ctx, const fp8_device_filter *filter, uint32_t *index)
{
    if (!ctx || !index) return FP8_ERR_NULL_POINTER;
    /* Devices are listed GPU backends first, so the first match is the preferred one. */
    for (uint32_t i = 0; i < ctx->device_count; i++) {
        const fp8_device_info *d = &ctx->devices[i].info;
        if (filter) {
            if (filter->backend && d->backend != filter->backend) continue;
            if (filter->vendor_id && d->vendor_id != filter->vendor_id) continue;
            if (filter->type && d->type != filter->type) continue;
            if (filter->name_contains && !contains_nocase(d->name, filter->name_contains)) continue;
        }
        *index = i;
        return FP8_OK;
    }
    return FP8_ERR_NO_DEVICE;
}

fp8_status fp8_device_open(fp8_context *ctx, uint32_t index, fp8_device **out)
{
    if (!ctx || !out) return FP8_ERR_NULL_POINTER;
    *out = NULL;
    if (index >= ctx->device_count) return FP8I_FAIL(ctx, FP8_ERR_NO_DEVICE, "device %u of %u", index, ctx->device_count);
    fp8_device *dev = fp8i_calloc(ctx, 1, sizeof *dev);
    if (!dev) return FP8_ERR_OUT_OF_HOST_MEMORY;
    dev->ctx = ctx;
    dev->entry = &ctx->devices[index];
    dev->backend = dev->entry->backend;
    dev->forced_path = fp8_path_from_name(getenv("FP8_PATH"));
    fp8_status st = dev->backend->device_open(dev);
    if (st != FP8_OK) {
        fp8i_free(ctx, dev);
        return st;
    }
    ctx->open_devices++;
    *out = dev;
    return FP8_OK;
}

void fp8_device_close(fp8_device *dev)
{
    if (!dev) return;
    fp8_context *ctx = dev->ctx;
    if (dev->live_buffers) FP8I_WARN(ctx, "closing a device with %u live buffers", dev->live_buffers);
    dev->backend->device_close(dev);
    ctx->open_devices--;
    fp8i_free(ctx, dev);
}

fp8_status fp8_device_get_info(const fp8_device *dev, fp8_device_info *info, fp8_device_verdict *verdict)
{
    if (!dev) return FP8_ERR_NULL_POINTER;
    if (info) *info = dev->entry->info;
    if (verdict) *verdict = dev->entry->verdict;
    return FP8_OK;
}

fp8_status fp8_device_synchronize(fp8_device *dev)
{
    if (!dev) return FP8_ERR_NULL_POINTER;
    return dev->backend->synchronize(dev);
}

fp8_status fp8_device_timer_start(fp8_device *dev)
{
    if (!dev) return FP8_ERR_NULL_POINTER;
    if (!dev->backend->timer_start) return FP8_ERR_UNSUPPORTED;
    return dev->backend->timer_start(dev);
}

fp8_status fp8_device_timer_stop(fp8_device *dev, double *elapsed_ns)
{
    if (!dev || !elapsed_ns) return FP8_ERR_NULL_POINTER;
    if (!dev->backend->timer_stop) return FP8_ERR_UNSUPPORTED;
    return dev->backend->timer_stop(dev, elapsed_ns);
}

fp8_status fp8_device_bench_run(fp8_device *dev, const fp8_bench_desc *d, double *flop)
{
    if (!dev || !d || !flop) return FP8_ERR_NULL_POINTER;
    if (!dev->backend->bench_run) return FP8_ERR_UNSUPPORTED;
    if (d->kernel == FP8_BENCH_SGEMM_F32) {
        if (!d->a || !d->b || !d->c) return FP8_ERR_NULL_POINTER;
        if (d->a->dev != dev || d->b->dev != dev || d->c->dev != dev) return FP8_ERR_WRONG_DEVICE;
        if (!d->m || !d->n || !d->k) return FP8_ERR_SHAPE;
        size_t a, b, c;
        if (!fp8i_mul_size((size_t)d->m * d->k, 4, &a) || !fp8i_mul_size((size_t)d->n * d->k, 4, &b) ||
            !fp8i_mul_size((size_t)d->m * d->n, 4, &c))
            return FP8_ERR_SIZE_OVERFLOW;
        if (d->a->size < a || d->b->size < b || d->c->size < c) return FP8_ERR_BUFFER_TOO_SMALL;
    } else if (d->kernel == FP8_BENCH_MATRIX_PEAK_F16) {
        if (!d->c) return FP8_ERR_NULL_POINTER;
        if (d->c->dev != dev) return FP8_ERR_WRONG_DEVICE;
    } else if (d->kernel == FP8_BENCH_COPY) {
        if (!d->a || !d->c) return FP8_ERR_NULL_POINTER;
        if (d->a->dev != dev || d->c->dev != dev) return FP8_ERR_WRONG_DEVICE;
        if (d->a->size % 16) return FP8_ERR_SHAPE;
        if (d->c->size < d->a->size) return FP8_ERR_BUFFER_TOO_SMALL;
    } else {
        return FP8_ERR_INVALID_ARGUMENT;
    }
    return dev->backend->bench_run(dev, d, flop);
}
