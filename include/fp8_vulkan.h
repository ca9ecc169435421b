/* libfp8 Vulkan interop: run libfp8 on a VkDevice and queue the application already has. */
#ifndef FP8_VULKAN_H
#define FP8_VULKAN_H

#include <fp8.h>
#include <vulkan/vulkan.h>

#ifdef __cplusplus
extern "C" {
#endif

/** A caller's Vulkan objects, borrowed by libfp8 and never destroyed by it. Zero-initialise, then fill. */
typedef struct fp8_vulkan_import {
    VkInstance instance;               /* the instance physical_device came from */
    VkPhysicalDevice physical_device;
    VkDevice device;                   /* created with at least Vulkan 1.2 */
    VkQueue queue;                     /* a queue with VK_QUEUE_COMPUTE_BIT ... */
    uint32_t queue_family;             /* ... of this family */
    /* The pNext chain given to vkCreateDevice (a VkPhysicalDeviceFeatures2, or NULL when pEnabledFeatures was
     * used): libfp8 uses only what it enabled. Its kernels need storageBuffer16BitAccess; the cooperative-matrix
     * paths also shaderFloat16, vulkanMemoryModel and the VK_NV/KHR_cooperative_matrix feature. Read during
     * the call only. */
    const VkPhysicalDeviceFeatures2 *enabled_features;
} fp8_vulkan_import;

/** Open a libfp8 device on a borrowed VkDevice and queue. The physical device must be one the context listed
 *  (matched by its device UUID), which gives the capability record and verdict. libfp8 submits to `queue`
 *  from the calling thread: the caller must not use the queue concurrently (Vulkan's external synchronization
 *  rule). fp8_device_close waits for libfp8's work and releases only libfp8's own objects; the instance,
 *  device and queue stay the caller's. Errors: FP8_ERR_NO_DEVICE when the context has no such physical
 *  device, FP8_ERR_UNSUPPORTED below Vulkan 1.2 or without a compute queue family. */
FP8_API fp8_status fp8_device_import_vulkan(fp8_context *ctx, const fp8_vulkan_import *import, fp8_device **out);

#ifdef __cplusplus
}
#endif
#endif /* FP8_VULKAN_H */
