/* OpenCL backend internals shared by its files: platform/device lists and entry points. */
#ifndef FP8_CL_INTERNAL_H
#define FP8_CL_INTERNAL_H

#include "../backend/backend.h"

#include <CL/cl.h>

/* One per context: every OpenCL device of every platform, in enumeration order. */
typedef struct fp8i_cl_state {
    uint32_t device_count;
    cl_platform_id platform[FP8I_MAX_DEVICES];
    cl_device_id device[FP8I_MAX_DEVICES];
} fp8i_cl_state;

static inline fp8i_cl_state *fp8i_cl_state_of(const fp8_context *ctx)
{
    return (fp8i_cl_state *)ctx->backend_state[FP8_BACKEND_OPENCL];
}

/* cl_platform.c: list platforms and devices, probe each. */
fp8_status fp8i_cl_enumerate(fp8_context *ctx);
void fp8i_cl_shutdown(fp8_context *ctx);

/* cl_probe.c: fill the capability record of one device from real queries. */
void fp8i_cl_probe_device(const fp8_context *ctx, cl_platform_id platform, cl_device_id device, fp8_device_info *info);

/* Map an OpenCL error to a status (and log it with what failed). */
fp8_status fp8i_cl_status(const fp8_context *ctx, cl_int err, const char *what);

#endif
