/* OpenCL device runtime: context and in-order profiling queue, buffers, transfers, launches and the timer. */
#include "cl_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* "OpenCL C 3.0 ..." -> 30; "OpenCL 2.1 ..." -> 21; 12 when unparsable. */
static unsigned version_of(const char *s, const char *prefix)
{
    unsigned major = 0, minor = 0;
    const size_t n = strlen(prefix);
    if (strncmp(s, prefix, n) != 0 || sscanf(s + n, "%u.%u", &major, &minor) != 2) return 12;
    return major * 10 + minor;
}

/* Tile shape of the fused GEMM: large register tiles where the device is a GPU with room for them. */
static fp8i_cl_tiles choose_tiles(const fp8_device_info *info, uint32_t max_wg, uint32_t local_mem)
{
    if (info->type == FP8_DEVICE_CPU) return (fp8i_cl_tiles){32, 32, 16, 4, 4};
    const fp8i_cl_tiles big = {128, 128, 32, 8, 8};
    const size_t big_local = 2u * big.bk * (big.bm + 4) * sizeof(float);
    if (max_wg >= 256 && local_mem >= big_local) return big;
    return (fp8i_cl_tiles){64, 64, 16, 4, 4};
}

fp8_status fp8i_cl_device_init(fp8_device *dev, cl_platform_id platform, cl_device_id device, cl_context context,
                               cl_command_queue queue)
{
    const fp8_context *ctx = dev->ctx;
    const fp8_device_info *info = &dev->entry->info;
    fp8i_cl_device *d = fp8i_calloc(ctx, 1, sizeof *d);
    if (!d) return FP8_ERR_OUT_OF_HOST_MEMORY;
    dev->impl = d;
    d->platform = platform;
    d->device = device;
    d->borrowed = context != NULL;

    cl_int err = CL_SUCCESS;
    if (context) {
        d->context = context;
        d->queue = queue;
        cl_command_queue_properties props = 0;
        clGetCommandQueueInfo(queue, CL_QUEUE_PROPERTIES, sizeof props, &props, NULL);
        d->profiling = (props & CL_QUEUE_PROFILING_ENABLE) != 0;
        if (props & CL_QUEUE_OUT_OF_ORDER_EXEC_MODE_ENABLE)
            FP8I_WARN(ctx, "opencl: the imported queue is out of order; libfp8 orders its commands itself only "
                           "through in-order semantics, so results may race");
    } else {
        const cl_context_properties cprops[] = {CL_CONTEXT_PLATFORM, (cl_context_properties)platform, 0};
        d->context = clCreateContext(cprops, 1, &device, NULL, NULL, &err);
        if (err != CL_SUCCESS) return fp8i_cl_status(ctx, err, "clCreateContext");
        char pver[128] = "";
        clGetPlatformInfo(platform, CL_PLATFORM_VERSION, sizeof pver, pver, NULL);
        pver[sizeof pver - 1] = '\0';
        if (version_of(pver, "OpenCL ") >= 20) {
            const cl_queue_properties qprops[] = {CL_QUEUE_PROPERTIES, CL_QUEUE_PROFILING_ENABLE, 0};
            d->queue = clCreateCommandQueueWithProperties(d->context, device, qprops, &err);
        } else {
            d->queue = clCreateCommandQueue(d->context, device, CL_QUEUE_PROFILING_ENABLE, &err);
        }
        if (err != CL_SUCCESS) return fp8i_cl_status(ctx, err, "clCreateCommandQueue");
        d->profiling = true;
    }

    fp8i_strlcpy(d->std_option, version_of(info->language_version, "OpenCL C ") >= 30 ? "-cl-std=CL3.0" : "-cl-std=CL1.2",
                 sizeof d->std_option);
    cl_device_fp_config fp = 0;
    clGetDeviceInfo(device, CL_DEVICE_SINGLE_FP_CONFIG, sizeof fp, &fp, NULL);
    d->denorms = (fp & CL_FP_DENORM) != 0;
    /* Inline PTX only where the device layer saw it build and run on this device; FP8_CL_PTX=0 turns it off, so
     * that the portable kernels can be tested and timed on the same device. */
    const char *ptx_env = getenv("FP8_CL_PTX");
    const bool ptx_allowed = !(ptx_env && strcmp(ptx_env, "0") == 0);
    d->ptx = ptx_allowed && info->caps.cl_inline_ptx;
    d->ptx_fp8 = d->ptx && info->caps.cl_ptx_fp8_convert;
    snprintf(d->decode_options, sizeof d->decode_options, "%s%s%s", d->denorms ? " -DFP8K_DENORMS=1" : "",
             d->ptx ? " -DFP8K_PTX=1" : "", d->ptx_fp8 ? " -DFP8K_PTX_FP8=1" : "");
    d->max_alloc = info->max_allocation_bytes;
    d->max_wg = info->max_workgroup_size ? info->max_workgroup_size : 64;
    d->local_mem = info->shared_memory_bytes;
    d->tiles = choose_tiles(info, d->max_wg, d->local_mem);
    FP8I_DEBUG(ctx, "opencl: opened %s (%s, decode options \"%s\", tiles %ux%ux%u)", info->name, d->std_option,
               d->decode_options, d->tiles.bm, d->tiles.bn, d->tiles.bk);
    return FP8_OK;
}

fp8_status fp8i_cl_device_open(fp8_device *dev)
{
    const fp8i_cl_state *cl = fp8i_cl_state_of(dev->ctx);
    const uint32_t i = dev->entry->backend_index;
    if (!cl || i >= cl->device_count) return FP8I_FAIL(dev->ctx, FP8_ERR_NO_DEVICE, "opencl: no device %u", i);
    fp8_status st = fp8i_cl_device_init(dev, cl->platform[i], cl->device[i], NULL, NULL);
    if (st != FP8_OK) fp8i_cl_device_close(dev);
    return st;
}

static void release_timer_events(fp8i_cl_device *d)
{
    if (d->ev_first) clReleaseEvent(d->ev_first);
    if (d->ev_last) clReleaseEvent(d->ev_last);
    d->ev_first = d->ev_last = NULL;
}

void fp8i_cl_device_close(fp8_device *dev)
{
    fp8i_cl_device *d = fp8i_cl_dev(dev);
    if (!d) return;
    if (d->queue) clFinish(d->queue);
    fp8i_cl_moe_release(dev);
    release_timer_events(d);
    if (d->scratch) clReleaseMemObject(d->scratch);
    fp8i_cl_programs_release(d);
    if (!d->borrowed) {
        if (d->queue) clReleaseCommandQueue(d->queue);
        if (d->context) clReleaseContext(d->context);
    }
    fp8i_free(dev->ctx, d);
    dev->impl = NULL;
}

fp8_status fp8i_cl_synchronize(fp8_device *dev)
{
    cl_int err = clFinish(fp8i_cl_dev(dev)->queue);
    if (err != CL_SUCCESS) return fp8i_cl_status(dev->ctx, err, "clFinish");
    return fp8i_cl_moe_take_error(dev); /* data errors the MoE kernels met (include/fp8_moe.h) */
}

void fp8i_cl_ev_commit(fp8i_cl_device *d)
{
    if (!d->timing || !d->ev_new) return;
    if (!d->ev_first) d->ev_first = d->ev_new;
    else clReleaseEvent(d->ev_new); /* not asked for by fp8i_cl_ev; an enqueue that made one anyway */
    d->ev_new = NULL;
}

fp8_status fp8i_cl_alloc(fp8_device *dev, size_t size, cl_mem *out)
{
    fp8i_cl_device *d = fp8i_cl_dev(dev);
    if (d->max_alloc && size > d->max_alloc)
        return FP8I_FAIL(dev->ctx, FP8_ERR_TOO_LARGE,
                         "opencl: %zu bytes exceed the largest single allocation of %s (%llu bytes)", size,
                         dev->entry->info.name, (unsigned long long)d->max_alloc);
    cl_int err = CL_SUCCESS;
    *out = clCreateBuffer(d->context, CL_MEM_READ_WRITE, size, NULL, &err);
    return err == CL_SUCCESS ? FP8_OK : fp8i_cl_status(dev->ctx, err, "clCreateBuffer");
}

fp8_status fp8i_cl_buffer_create(fp8_buffer *buf)
{
    cl_mem mem = NULL;
    fp8_status st = fp8i_cl_alloc(buf->dev, buf->size, &mem);
    buf->impl = mem;
    return st;
}

void fp8i_cl_buffer_free(fp8_buffer *buf)
{
    /* The release is deferred by OpenCL until enqueued commands that use the buffer have finished. */
    if (buf->impl) clReleaseMemObject(fp8i_cl_mem(buf));
}

fp8_status fp8i_cl_buffer_write(fp8_buffer *buf, size_t offset, const void *src, size_t size)
{
    fp8i_cl_device *d = fp8i_cl_dev(buf->dev);
    cl_int err = clEnqueueWriteBuffer(d->queue, fp8i_cl_mem(buf), CL_TRUE, offset, size, src, 0, NULL, fp8i_cl_ev(d));
    if (err != CL_SUCCESS) return fp8i_cl_status(buf->dev->ctx, err, "clEnqueueWriteBuffer");
    fp8i_cl_ev_commit(d);
    return FP8_OK;
}

fp8_status fp8i_cl_buffer_read(const fp8_buffer *buf, size_t offset, void *dst, size_t size)
{
    fp8i_cl_device *d = fp8i_cl_dev(buf->dev);
    /* Blocking on an in-order queue: returns after every earlier command and the read itself. */
    cl_int err = clEnqueueReadBuffer(d->queue, fp8i_cl_mem(buf), CL_TRUE, offset, size, dst, 0, NULL, fp8i_cl_ev(d));
    if (err != CL_SUCCESS) return fp8i_cl_status(buf->dev->ctx, err, "clEnqueueReadBuffer");
    fp8i_cl_ev_commit(d);
    return FP8_OK;
}

fp8_status fp8i_cl_buffer_copy(fp8_buffer *dst, size_t dst_offset, const fp8_buffer *src, size_t src_offset,
                               size_t size)
{
    fp8i_cl_device *d = fp8i_cl_dev(dst->dev);
    if (src == dst && src_offset < dst_offset + size && dst_offset < src_offset + size)
        return FP8I_FAIL(dst->dev->ctx, FP8_ERR_INVALID_ARGUMENT, "opencl: copy between overlapping ranges of one buffer");
    cl_int err = clEnqueueCopyBuffer(d->queue, fp8i_cl_mem(src), fp8i_cl_mem(dst), src_offset, dst_offset, size, 0,
                                     NULL, fp8i_cl_ev(d));
    if (err != CL_SUCCESS) return fp8i_cl_status(dst->dev->ctx, err, "clEnqueueCopyBuffer");
    fp8i_cl_ev_commit(d);
    return FP8_OK;
}

fp8_status fp8i_cl_launch(fp8_device *dev, cl_kernel kernel, cl_uint dims, const size_t *global, const size_t *local)
{
    fp8i_cl_device *d = fp8i_cl_dev(dev);
    cl_int err = clEnqueueNDRangeKernel(d->queue, kernel, dims, NULL, global, local, 0, NULL, fp8i_cl_ev(d));
    if (err != CL_SUCCESS) return fp8i_cl_status(dev->ctx, err, "clEnqueueNDRangeKernel");
    fp8i_cl_ev_commit(d);
    return FP8_OK;
}

fp8_status fp8i_cl_timer_start(fp8_device *dev)
{
    fp8i_cl_device *d = fp8i_cl_dev(dev);
    if (!d->profiling)
        return FP8I_FAIL(dev->ctx, FP8_ERR_UNSUPPORTED, "opencl: the queue was created without profiling");
    release_timer_events(d);
    d->timing = true;
    return FP8_OK;
}

static cl_ulong profile(cl_event ev, cl_profiling_info what, cl_int *err)
{
    cl_ulong t = 0;
    cl_int e = clGetEventProfilingInfo(ev, what, sizeof t, &t, NULL);
    if (e != CL_SUCCESS) *err = e;
    return t;
}

fp8_status fp8i_cl_timer_stop(fp8_device *dev, double *elapsed_ns)
{
    fp8i_cl_device *d = fp8i_cl_dev(dev);
    if (!d->timing) return FP8I_FAIL(dev->ctx, FP8_ERR_INVALID_ARGUMENT, "opencl: timer_stop without timer_start");
    d->timing = false;
    *elapsed_ns = 0.0;
    /* The region ends when a marker behind its commands completes (an in-order queue). */
    cl_int err = d->ev_first ? clEnqueueMarkerWithWaitList(d->queue, 0, NULL, &d->ev_last) : CL_SUCCESS;
    if (err != CL_SUCCESS) {
        release_timer_events(d);
        return fp8i_cl_status(dev->ctx, err, "clEnqueueMarkerWithWaitList (timer)");
    }
    err = clFinish(d->queue);
    if (err != CL_SUCCESS) return fp8i_cl_status(dev->ctx, err, "clFinish");
    if (!d->ev_first) return FP8_OK; /* nothing was enqueued */
    const cl_ulong t0 = profile(d->ev_first, CL_PROFILING_COMMAND_START, &err);
    const cl_ulong t1 = profile(d->ev_last, CL_PROFILING_COMMAND_END, &err);
    release_timer_events(d);
    if (err != CL_SUCCESS) return fp8i_cl_status(dev->ctx, err, "clGetEventProfilingInfo");
    *elapsed_ns = t1 > t0 ? (double)(t1 - t0) : 0.0;
    return FP8_OK;
}
