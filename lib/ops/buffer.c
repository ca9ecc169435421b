/* Buffer API front door: argument and bounds checks before the backend is called. */
#include "../backend/backend.h"

static bool in_bounds(const fp8_buffer *buf, size_t offset, size_t size)
{
    return offset <= buf->size && size <= buf->size - offset;
}

fp8_status fp8_buffer_create(fp8_device *dev, size_t size, fp8_buffer **out)
{
    if (!dev || !out) return FP8_ERR_NULL_POINTER;
    *out = NULL;
    if (size == 0) return FP8I_FAIL(dev->ctx, FP8_ERR_INVALID_ARGUMENT, "buffer size 0");
    const fp8_device_info *info = &dev->entry->info;
    if (info->max_allocation_bytes && size > info->max_allocation_bytes)
        return FP8I_FAIL(dev->ctx, FP8_ERR_TOO_LARGE, "buffer of %zu bytes exceeds the device's largest allocation (%llu)",
                         size, (unsigned long long)info->max_allocation_bytes);
    /* Past max_buffer_range no kernel can bind the buffer whole: the backends refuse such a buffer wherever
     * a kernel would (fp8.h), never truncate it; MoE expert weights are bound a window of experts at a time. */
    fp8_buffer *buf = fp8i_calloc(dev->ctx, 1, sizeof *buf);
    if (!buf) return FP8_ERR_OUT_OF_HOST_MEMORY;
    buf->dev = dev;
    buf->size = size;
    fp8_status st = dev->backend->buffer_create(buf);
    if (st != FP8_OK) {
        fp8i_free(dev->ctx, buf);
        return st;
    }
    dev->live_buffers++;
    *out = buf;
    return FP8_OK;
}

void fp8_buffer_free(fp8_buffer *buf)
{
    if (!buf) return;
    fp8_device *dev = buf->dev;
    dev->backend->buffer_free(buf);
    dev->live_buffers--;
    fp8i_free(dev->ctx, buf);
}

size_t fp8_buffer_size(const fp8_buffer *buf) { return buf ? buf->size : 0; }

fp8_status fp8_buffer_write(fp8_buffer *buf, size_t offset, const void *src, size_t size)
{
    if (!buf || (!src && size)) return FP8_ERR_NULL_POINTER;
    if (!in_bounds(buf, offset, size))
        return FP8I_FAIL(buf->dev->ctx, FP8_ERR_BUFFER_TOO_SMALL, "write of %zu bytes at %zu into a %zu-byte buffer",
                         size, offset, buf->size);
    if (!size) return FP8_OK;
    return buf->dev->backend->buffer_write(buf, offset, src, size);
}

fp8_status fp8_buffer_read(const fp8_buffer *buf, size_t offset, void *dst, size_t size)
{
    if (!buf || (!dst && size)) return FP8_ERR_NULL_POINTER;
    if (!in_bounds(buf, offset, size))
        return FP8I_FAIL(buf->dev->ctx, FP8_ERR_BUFFER_TOO_SMALL, "read of %zu bytes at %zu from a %zu-byte buffer",
                         size, offset, buf->size);
    if (!size) return FP8_OK;
    return buf->dev->backend->buffer_read(buf, offset, dst, size);
}

fp8_status fp8_buffer_copy(fp8_buffer *dst, size_t dst_offset, const fp8_buffer *src, size_t src_offset, size_t size)
{
    if (!dst || !src) return FP8_ERR_NULL_POINTER;
    if (dst->dev != src->dev) return FP8I_FAIL(dst->dev->ctx, FP8_ERR_WRONG_DEVICE, "copy between devices");
    if (!in_bounds(dst, dst_offset, size) || !in_bounds(src, src_offset, size))
        return FP8I_FAIL(dst->dev->ctx, FP8_ERR_BUFFER_TOO_SMALL, "copy of %zu bytes out of bounds", size);
    /* GPU copy commands leave overlapping regions undefined (vkCmdCopyBuffer, clEnqueueCopyBuffer). */
    if (dst == src && dst_offset < src_offset + size && src_offset < dst_offset + size)
        return FP8I_FAIL(dst->dev->ctx, FP8_ERR_INVALID_ARGUMENT, "copy within one buffer between overlapping ranges");
    if (!size) return FP8_OK;
    if (!dst->dev->backend->buffer_copy) return FP8_ERR_UNSUPPORTED;
    return dst->dev->backend->buffer_copy(dst, dst_offset, src, src_offset, size);
}
