/* OpenCL platforms and devices of a context. */
#include "cl_internal.h"

fp8_status fp8i_cl_status(const fp8_context *ctx, cl_int err, const char *what)
{
    switch (err) {
    case CL_SUCCESS: return FP8_OK;
    case CL_OUT_OF_HOST_MEMORY: return FP8I_FAIL(ctx, FP8_ERR_OUT_OF_HOST_MEMORY, "%s: cl error %d", what, (int)err);
    case CL_MEM_OBJECT_ALLOCATION_FAILURE:
    case CL_OUT_OF_RESOURCES: return FP8I_FAIL(ctx, FP8_ERR_OUT_OF_DEVICE_MEMORY, "%s: cl error %d", what, (int)err);
    case CL_BUILD_PROGRAM_FAILURE: return FP8I_FAIL(ctx, FP8_ERR_KERNEL_BUILD, "%s: cl error %d", what, (int)err);
    case CL_INVALID_BUFFER_SIZE: return FP8I_FAIL(ctx, FP8_ERR_TOO_LARGE, "%s: cl error %d", what, (int)err);
    default: return FP8I_FAIL(ctx, FP8_ERR_BACKEND, "%s: cl error %d", what, (int)err);
    }
}

fp8_status fp8i_cl_enumerate(fp8_context *ctx)
{
    cl_uint np = 0;
    cl_int err = clGetPlatformIDs(0, NULL, &np);
    if (err != CL_SUCCESS || np == 0) {
        /* -1001 is CL_PLATFORM_NOT_FOUND_KHR: the ICD loader found no driver. */
        const bool no_driver = err == -1001 || (err == CL_SUCCESS && np == 0);
        fp8i_backend_note(ctx, FP8_BACKEND_OPENCL, no_driver ? FP8_BACKEND_STATE_NO_DRIVER : FP8_BACKEND_STATE_FAILED,
                          "clGetPlatformIDs returned %d%s", (int)err,
                          no_driver ? " (CL_PLATFORM_NOT_FOUND_KHR): no OpenCL platform (ICD) is installed" : "");
        FP8I_INFO(ctx, "opencl: no platform (cl error %d)%s", (int)err, no_driver ? ": no OpenCL driver installed" : "");
        return FP8_OK;
    }
    cl_platform_id platforms[16];
    if (np > 16) np = 16;
    err = clGetPlatformIDs(np, platforms, NULL);
    if (err != CL_SUCCESS) return fp8i_cl_status(ctx, err, "clGetPlatformIDs");

    fp8i_cl_state *cl = fp8i_calloc(ctx, 1, sizeof *cl);
    if (!cl) return FP8_ERR_OUT_OF_HOST_MEMORY;
    ctx->backend_state[FP8_BACKEND_OPENCL] = cl;
    for (cl_uint p = 0; p < np; p++) {
        cl_uint nd = 0;
        cl_device_id devices[FP8I_MAX_DEVICES];
        err = clGetDeviceIDs(platforms[p], CL_DEVICE_TYPE_ALL, FP8I_MAX_DEVICES, devices, &nd);
        if (err != CL_SUCCESS) {
            FP8I_INFO(ctx, "opencl: platform %u has no devices (cl error %d)", p, (int)err);
            continue;
        }
        if (nd > FP8I_MAX_DEVICES) nd = FP8I_MAX_DEVICES;
        for (cl_uint d = 0; d < nd && cl->device_count < FP8I_MAX_DEVICES; d++) {
            fp8i_device_entry *e = fp8i_add_device(ctx, &fp8i_backend_opencl, cl->device_count);
            if (!e) return FP8_OK;
            cl->platform[cl->device_count] = platforms[p];
            cl->device[cl->device_count] = devices[d];
            cl->device_count++;
            uint32_t index = e->info.index;
            fp8i_cl_probe_device(ctx, platforms[p], devices[d], &e->info);
            e->info.backend = FP8_BACKEND_OPENCL;
            e->info.index = index;
        }
    }
    return FP8_OK;
}

void fp8i_cl_shutdown(fp8_context *ctx)
{
    fp8i_cl_state *cl = fp8i_cl_state_of(ctx);
    if (!cl) return;
    fp8i_free(ctx, cl);
    ctx->backend_state[FP8_BACKEND_OPENCL] = NULL;
}
