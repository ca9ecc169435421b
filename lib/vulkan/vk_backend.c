/* The Vulkan backend's vtable. */
#include "vk_internal.h"

static fp8_status vk_device_open(fp8_device *dev)
{
    return FP8I_FAIL(dev->ctx, FP8_ERR_UNSUPPORTED, "vulkan: device runtime not implemented yet");
}
static void vk_device_close(fp8_device *dev) { (void)dev; }
static fp8_status vk_synchronize(fp8_device *dev) { (void)dev; return FP8_OK; }

const fp8i_backend fp8i_backend_vulkan = {
    .id = FP8_BACKEND_VULKAN,
    .env_disable = "FP8_DISABLE_VULKAN",
    .enumerate = fp8i_vk_enumerate,
    .shutdown = fp8i_vk_shutdown,
    .device_open = vk_device_open,
    .device_close = vk_device_close,
    .synchronize = vk_synchronize,
};
