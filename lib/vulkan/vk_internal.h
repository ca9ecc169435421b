/* Vulkan backend internals shared by its files: the instance, per-device state, and entry points. */
#ifndef FP8_VK_INTERNAL_H
#define FP8_VK_INTERNAL_H

#include "../backend/backend.h"
#include "vk_compat.h"

/* One per context: the instance and the physical devices it found. */
typedef struct fp8i_vk_instance {
    VkInstance instance;
    uint32_t api_version;                 /* instance version reported by the loader */
    bool validation;                      /* VK_LAYER_KHRONOS_validation enabled */
    VkDebugUtilsMessengerEXT messenger;
    uint32_t validation_errors;           /* counted by the messenger; tests fail on non-zero */
    const fp8_context *ctx;
    uint32_t physical_count;
    VkPhysicalDevice physical[FP8I_MAX_DEVICES];
} fp8i_vk_instance;

static inline fp8i_vk_instance *fp8i_vk_state(const fp8_context *ctx)
{
    return (fp8i_vk_instance *)ctx->backend_state[FP8_BACKEND_VULKAN];
}

/* vk_instance.c: create the instance, list physical devices, probe each. */
fp8_status fp8i_vk_enumerate(fp8_context *ctx);
void fp8i_vk_shutdown(fp8_context *ctx);
/* Number of validation-layer errors seen so far in this context (0 without the layer). */
uint32_t fp8i_vk_validation_errors(const fp8_context *ctx);

/* vk_probe.c: fill the capability record of one physical device from real queries. */
void fp8i_vk_probe_device(const fp8i_vk_instance *vk, VkPhysicalDevice phys, fp8_device_info *info);

/* Map a VkResult to a status (and log it with what failed). */
fp8_status fp8i_vk_status(const fp8_context *ctx, VkResult r, const char *what);

#endif
