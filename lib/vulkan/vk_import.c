/* fp8_device_import_vulkan: a libfp8 device on a caller's VkDevice and queue, borrowed and never destroyed. */
#include "vk_internal.h"

#include "fp8_vulkan.h"

#include <stdlib.h>
#include <string.h>

static bool device_uuid(VkPhysicalDevice phys, uint8_t uuid[VK_UUID_SIZE])
{
    VkPhysicalDeviceIDProperties id = {.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_ID_PROPERTIES};
    VkPhysicalDeviceProperties2 p = {.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_PROPERTIES_2, .pNext = &id};
    vkGetPhysicalDeviceProperties2(phys, &p);
    memcpy(uuid, id.deviceUUID, VK_UUID_SIZE);
    return true;
}

/* The context's entry for the same physical device as `phys` (which may come from another instance). */
static const fp8i_device_entry *find_entry(const fp8_context *ctx, VkPhysicalDevice phys)
{
    const fp8i_vk_instance *vk = fp8i_vk_state(ctx);
    if (!vk) return NULL;
    uint8_t want[VK_UUID_SIZE], have[VK_UUID_SIZE];
    device_uuid(phys, want);
    for (uint32_t i = 0; i < ctx->device_count; i++) {
        const fp8i_device_entry *e = &ctx->devices[i];
        if (e->info.backend != FP8_BACKEND_VULKAN || e->backend_index >= vk->physical_count) continue;
        device_uuid(vk->physical[e->backend_index], have);
        if (memcmp(want, have, VK_UUID_SIZE) == 0) return e;
    }
    return NULL;
}

/* What the caller enabled, from the structures libfp8 knows in its vkCreateDevice pNext chain. */
static void enabled_features(const VkPhysicalDeviceFeatures2 *f2, fp8i_vk_features *ft)
{
    for (const VkBaseInStructure *s = (const VkBaseInStructure *)f2; s; s = s->pNext) {
        switch ((int)s->sType) {
        case VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_VULKAN_1_1_FEATURES:
            ft->storage16 |= ((const VkPhysicalDeviceVulkan11Features *)s)->storageBuffer16BitAccess;
            break;
        case VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_16BIT_STORAGE_FEATURES:
            ft->storage16 |= ((const VkPhysicalDevice16BitStorageFeatures *)s)->storageBuffer16BitAccess;
            break;
        case VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_VULKAN_1_2_FEATURES: {
            const VkPhysicalDeviceVulkan12Features *f = (const VkPhysicalDeviceVulkan12Features *)s;
            ft->fp16 |= f->shaderFloat16;
            ft->int8 |= f->shaderInt8;
            ft->storage8 |= f->storageBuffer8BitAccess;
            ft->memory_model |= f->vulkanMemoryModel;
            break;
        }
        case VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_SHADER_FLOAT16_INT8_FEATURES:
            ft->fp16 |= ((const VkPhysicalDeviceShaderFloat16Int8Features *)s)->shaderFloat16;
            ft->int8 |= ((const VkPhysicalDeviceShaderFloat16Int8Features *)s)->shaderInt8;
            break;
        case VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_8BIT_STORAGE_FEATURES:
            ft->storage8 |= ((const VkPhysicalDevice8BitStorageFeatures *)s)->storageBuffer8BitAccess;
            break;
        case VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_VULKAN_MEMORY_MODEL_FEATURES:
            ft->memory_model |= ((const VkPhysicalDeviceVulkanMemoryModelFeatures *)s)->vulkanMemoryModel;
            break;
        case VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_VULKAN_1_3_FEATURES:
            ft->subgroup_size_control |= ((const VkPhysicalDeviceVulkan13Features *)s)->subgroupSizeControl;
            ft->compute_full_subgroups |= ((const VkPhysicalDeviceVulkan13Features *)s)->computeFullSubgroups;
            break;
        case VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_SUBGROUP_SIZE_CONTROL_FEATURES:
            ft->subgroup_size_control |= ((const VkPhysicalDeviceSubgroupSizeControlFeatures *)s)->subgroupSizeControl;
            break;
        case VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_COOPERATIVE_MATRIX_FEATURES_NV:
            ft->nv_coopmat |= ((const VkPhysicalDeviceCooperativeMatrixFeaturesNV *)s)->cooperativeMatrix;
            break;
        default:
            if (s->sType == FP8I_VK_STYPE_COOPMAT_FEATURES_KHR)
                ft->khr_coopmat |= ((const fp8i_vk_coopmat_features_khr *)s)->cooperativeMatrix;
            break;
        }
    }
}

fp8_status fp8_device_import_vulkan(fp8_context *ctx, const fp8_vulkan_import *im, fp8_device **out)
{
    if (!ctx || !im || !out) return FP8_ERR_NULL_POINTER;
    *out = NULL;
    if (!im->instance || !im->physical_device || !im->device || !im->queue)
        return FP8I_FAIL(ctx, FP8_ERR_NULL_POINTER, "vulkan import: instance, physical device, device and queue are required");
    const fp8i_device_entry *entry = find_entry(ctx, im->physical_device);
    if (!entry)
        return FP8I_FAIL(ctx, FP8_ERR_NO_DEVICE,
                         "vulkan import: the physical device is not among the context's Vulkan devices (Vulkan disabled?)");
    fp8_device *dev = fp8i_calloc(ctx, 1, sizeof *dev);
    fp8i_vk_device *vd = fp8i_calloc(ctx, 1, sizeof *vd);
    if (!dev || !vd) {
        fp8i_free(ctx, dev);
        fp8i_free(ctx, vd);
        return FP8_ERR_OUT_OF_HOST_MEMORY;
    }
    dev->ctx = ctx;
    dev->entry = entry;
    dev->backend = &fp8i_backend_vulkan;
    dev->forced_path = fp8_path_from_name(getenv("FP8_PATH"));
    vd->dev = dev;
    vd->ctx = ctx;
    vd->borrowed = true;
    vd->instance = im->instance;
    vd->phys = im->physical_device;
    vd->device = im->device;
    vd->queue = im->queue;
    vd->queue_family = im->queue_family;
    vkGetPhysicalDeviceProperties(vd->phys, &vd->props);
    vkGetPhysicalDeviceMemoryProperties(vd->phys, &vd->mem);
    if (VK_API_VERSION_MAJOR(vd->props.apiVersion) == 1 && VK_API_VERSION_MINOR(vd->props.apiVersion) < 2) {
        fp8i_free(ctx, vd);
        fp8i_free(ctx, dev);
        return FP8I_FAIL(ctx, FP8_ERR_UNSUPPORTED, "vulkan import: %s is below Vulkan 1.2", vd->props.deviceName);
    }
    uint32_t nq = 0;
    vkGetPhysicalDeviceQueueFamilyProperties(vd->phys, &nq, NULL);
    VkQueueFamilyProperties *qf = fp8i_calloc(ctx, nq ? nq : 1, sizeof *qf);
    bool compute = false;
    if (qf) {
        vkGetPhysicalDeviceQueueFamilyProperties(vd->phys, &nq, qf);
        compute = im->queue_family < nq && (qf[im->queue_family].queueFlags & VK_QUEUE_COMPUTE_BIT);
        fp8i_free(ctx, qf);
    }
    if (!compute) {
        fp8i_free(ctx, vd);
        fp8i_free(ctx, dev);
        return FP8I_FAIL(ctx, FP8_ERR_UNSUPPORTED, "vulkan import: queue family %u has no compute", im->queue_family);
    }
    if (im->enabled_features) enabled_features(im->enabled_features, &vd->feat);
    fp8i_vk_query_properties(vd, VK_API_VERSION_MINOR(vd->props.apiVersion) >= 3);
    fp8_status st = fp8i_vk_finish_open(dev, vd);
    if (st != FP8_OK) {
        fp8i_free(ctx, dev);
        return st;
    }
    ctx->open_devices++;
    FP8I_INFO(ctx, "vulkan: imported %s (borrowed device and queue family %u)", vd->props.deviceName, vd->queue_family);
    *out = dev;
    return FP8_OK;
}
