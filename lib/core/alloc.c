/* Host allocation through the context's optional allocator. */
#include "internal.h"

#include <stdlib.h>
#include <string.h>

void *fp8i_malloc(const fp8_context *ctx, size_t size)
{
    if (size == 0) size = 1;
    if (ctx && ctx->allocator.alloc) return ctx->allocator.alloc(ctx->allocator.user, size, 16);
    return malloc(size);
}

void *fp8i_calloc(const fp8_context *ctx, size_t count, size_t size)
{
    size_t total;
    if (!fp8i_mul_size(count, size, &total)) return NULL;
    void *p = fp8i_malloc(ctx, total);
    if (p) memset(p, 0, total ? total : 1);
    return p;
}

void fp8i_free(const fp8_context *ctx, void *ptr)
{
    if (!ptr) return;
    if (ctx && ctx->allocator.free) ctx->allocator.free(ctx->allocator.user, ptr);
    else free(ptr);
}
