/* Interop: a libfp8 device over a caller's cl_context/cl_command_queue/cl_device_id, and cl_mem in both ways. */
#include "cl_internal.h"

#include "fp8_opencl.h"

#include <stdlib.h>

static bool is_cl(const fp8_device *dev) { return dev && dev->backend == &fp8i_backend_opencl && dev->impl; }

fp8_status fp8_device_import_opencl(fp8_context *ctx, cl_context context, cl_command_queue queue, cl_device_id device,
                                    fp8_device **out)
{
    if (!ctx || !context || !queue || !device || !out) return FP8_ERR_NULL_POINTER;
    *out = NULL;
    const fp8i_cl_state *cl = fp8i_cl_state_of(ctx);
    const fp8i_device_entry *entry = NULL;
    for (uint32_t i = 0; i < ctx->device_count && !entry; i++) {
        const fp8i_device_entry *e = &ctx->devices[i];
        if (e->backend == &fp8i_backend_opencl && cl && e->backend_index < cl->device_count &&
            cl->device[e->backend_index] == device)
            entry = e;
    }
    if (!entry) return FP8I_FAIL(ctx, FP8_ERR_NO_DEVICE, "opencl import: the device is not among this context's devices");
    cl_context qctx = NULL;
    cl_device_id qdev = NULL;
    if (clGetCommandQueueInfo(queue, CL_QUEUE_CONTEXT, sizeof qctx, &qctx, NULL) != CL_SUCCESS ||
        clGetCommandQueueInfo(queue, CL_QUEUE_DEVICE, sizeof qdev, &qdev, NULL) != CL_SUCCESS || qctx != context ||
        qdev != device)
        return FP8I_FAIL(ctx, FP8_ERR_INVALID_ARGUMENT, "opencl import: the queue is not of this context and device");

    fp8_device *dev = fp8i_calloc(ctx, 1, sizeof *dev);
    if (!dev) return FP8_ERR_OUT_OF_HOST_MEMORY;
    dev->ctx = ctx;
    dev->entry = entry;
    dev->backend = &fp8i_backend_opencl;
    dev->forced_path = fp8_path_from_name(getenv("FP8_PATH"));
    fp8_status st = fp8i_cl_device_init(dev, cl->platform[entry->backend_index], device, context, queue);
    if (st != FP8_OK) {
        fp8i_cl_device_close(dev);
        fp8i_free(ctx, dev);
        return st;
    }
    ctx->open_devices++;
    *out = dev;
    return FP8_OK;
}

fp8_status fp8_buffer_import_opencl(fp8_device *dev, cl_mem mem, size_t size, fp8_buffer **out)
{
    if (!dev || !mem || !out) return FP8_ERR_NULL_POINTER;
    *out = NULL;
    if (!is_cl(dev)) return FP8I_FAIL(dev->ctx, FP8_ERR_WRONG_DEVICE, "opencl import: not an OpenCL device");
    cl_context mctx = NULL;
    size_t msize = 0;
    if (clGetMemObjectInfo(mem, CL_MEM_CONTEXT, sizeof mctx, &mctx, NULL) != CL_SUCCESS ||
        clGetMemObjectInfo(mem, CL_MEM_SIZE, sizeof msize, &msize, NULL) != CL_SUCCESS)
        return FP8I_FAIL(dev->ctx, FP8_ERR_INVALID_ARGUMENT, "opencl import: not a valid cl_mem");
    if (mctx != fp8i_cl_dev(dev)->context)
        return FP8I_FAIL(dev->ctx, FP8_ERR_WRONG_DEVICE, "opencl import: the buffer belongs to another cl_context");
    if (size == 0) size = msize;
    if (size > msize)
        return FP8I_FAIL(dev->ctx, FP8_ERR_BUFFER_TOO_SMALL, "opencl import: %zu bytes asked of a %zu-byte buffer", size,
                         msize);
    fp8_buffer *buf = fp8i_calloc(dev->ctx, 1, sizeof *buf);
    if (!buf) return FP8_ERR_OUT_OF_HOST_MEMORY;
    clRetainMemObject(mem); /* released by fp8_buffer_free through the backend */
    buf->dev = dev;
    buf->size = size;
    buf->impl = mem;
    dev->live_buffers++;
    *out = buf;
    return FP8_OK;
}

cl_mem fp8_buffer_opencl_mem(const fp8_buffer *buf)
{
    return buf && is_cl(buf->dev) ? fp8i_cl_mem(buf) : NULL;
}

cl_command_queue fp8_device_opencl_queue(const fp8_device *dev)
{
    return is_cl(dev) ? fp8i_cl_dev(dev)->queue : NULL;
}
