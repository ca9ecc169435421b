/* The registry of compiled-in backends, in the order their devices are listed (GPUs first, CPU last). */
#include "backend.h"

#include <string.h>

const fp8i_backend *const *fp8i_backends(void)
{
    static const fp8i_backend *const list[] = {
#ifdef FP8_HAVE_VULKAN
        &fp8i_backend_vulkan,
#endif
#ifdef FP8_HAVE_OPENCL
        &fp8i_backend_opencl,
#endif
        &fp8i_backend_cpu,
        NULL,
    };
    return list;
}

fp8i_device_entry *fp8i_add_device(fp8_context *ctx, const fp8i_backend *backend, uint32_t backend_index)
{
    if (ctx->device_count >= FP8I_MAX_DEVICES) {
        FP8I_WARN(ctx, "device list full (%d devices); further devices are ignored", FP8I_MAX_DEVICES);
        return NULL;
    }
    fp8i_device_entry *e = &ctx->devices[ctx->device_count];
    memset(e, 0, sizeof *e);
    e->backend = backend;
    e->backend_index = backend_index;
    e->info.backend = backend->id;
    e->info.index = ctx->device_count++;
    return e;
}
