/* The OpenCL backend's vtable. */
#include "cl_internal.h"

static fp8_status cl_device_open(fp8_device *dev)
{
    return FP8I_FAIL(dev->ctx, FP8_ERR_UNSUPPORTED, "opencl: device runtime not implemented yet");
}
static void cl_device_close(fp8_device *dev) { (void)dev; }
static fp8_status cl_synchronize(fp8_device *dev) { (void)dev; return FP8_OK; }

const fp8i_backend fp8i_backend_opencl = {
    .id = FP8_BACKEND_OPENCL,
    .env_disable = "FP8_DISABLE_OPENCL",
    .enumerate = fp8i_cl_enumerate,
    .shutdown = fp8i_cl_shutdown,
    .device_open = cl_device_open,
    .device_close = cl_device_close,
    .synchronize = cl_synchronize,
};
