/* Log messages go to the context's callback; the library itself never prints. */
#include "internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void vlog(const fp8_context *ctx, fp8_log_level level, const char *fmt, va_list ap)
{
    if (!ctx || !ctx->options.log || level < ctx->options.log_level) return;
    char message[1024];
    vsnprintf(message, sizeof message, fmt, ap);
    ctx->options.log(ctx->options.log_user, level, message);
}

void fp8i_log(const fp8_context *ctx, fp8_log_level level, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vlog(ctx, level, fmt, ap);
    va_end(ap);
}

fp8_status fp8i_fail(const fp8_context *ctx, fp8_status status, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vlog(ctx, FP8_LOG_ERROR, fmt, ap);
    va_end(ap);
    return status;
}

/* Whether environment variable `name` is set to one of `words` (any case). */
static bool env_is(const char *name, const char *const words[4])
{
    const char *v = getenv(name);
    if (!v) return false;
    for (int i = 0; i < 4; i++)
        if (strcasecmp(v, words[i]) == 0) return true;
    return false;
}

bool fp8i_env_flag(const char *name)
{
    static const char *const on[4] = {"1", "true", "yes", "on"};
    return env_is(name, on);
}

bool fp8i_env_off(const char *name)
{
    static const char *const off[4] = {"0", "false", "no", "off"};
    return env_is(name, off);
}

void fp8i_strlcpy(char *dst, const char *src, size_t dst_size)
{
    if (!dst_size) return;
    size_t n = src ? strlen(src) : 0;
    if (n >= dst_size) n = dst_size - 1;
    if (n) memcpy(dst, src, n);
    dst[n] = '\0';
}
