/* Capability record of a Vulkan physical device, from real queries. */
#include "vk_internal.h"

#include <stdio.h>
#include <string.h>

static const char *vendor_name(uint32_t id)
{
    switch (id) {
    case 0x1002: return "AMD";
    case 0x10DE: return "NVIDIA";
    case 0x8086: return "Intel";
    case 0x13B5: return "Arm";
    case 0x5143: return "Qualcomm";
    case 0x1010: return "Imagination";
    case 0x10005: return "Mesa";
    default: return "unknown";
    }
}

static fp8_device_type device_type(VkPhysicalDeviceType t)
{
    switch (t) {
    case VK_PHYSICAL_DEVICE_TYPE_INTEGRATED_GPU: return FP8_DEVICE_INTEGRATED_GPU;
    case VK_PHYSICAL_DEVICE_TYPE_DISCRETE_GPU: return FP8_DEVICE_DISCRETE_GPU;
    case VK_PHYSICAL_DEVICE_TYPE_VIRTUAL_GPU: return FP8_DEVICE_VIRTUAL_GPU;
    case VK_PHYSICAL_DEVICE_TYPE_CPU: return FP8_DEVICE_CPU;
    default: return FP8_DEVICE_OTHER;
    }
}

void fp8i_vk_probe_device(const fp8i_vk_instance *vk, VkPhysicalDevice phys, fp8_device_info *info)
{
    (void)vk;
    VkPhysicalDeviceProperties p;
    vkGetPhysicalDeviceProperties(phys, &p);
    fp8i_strlcpy(info->name, p.deviceName, sizeof info->name);
    info->vendor_id = p.vendorID;
    info->device_id = p.deviceID;
    fp8i_strlcpy(info->vendor, vendor_name(p.vendorID), sizeof info->vendor);
    info->type = device_type(p.deviceType);
    snprintf(info->api_version, sizeof info->api_version, "Vulkan %u.%u.%u", VK_API_VERSION_MAJOR(p.apiVersion),
             VK_API_VERSION_MINOR(p.apiVersion), VK_API_VERSION_PATCH(p.apiVersion));
    snprintf(info->driver_version, sizeof info->driver_version, "%#x", p.driverVersion);
    info->max_buffer_range = p.limits.maxStorageBufferRange;
    info->shared_memory_bytes = p.limits.maxComputeSharedMemorySize;
    info->max_workgroup_size = p.limits.maxComputeWorkGroupInvocations;

    VkPhysicalDeviceMemoryProperties mem;
    vkGetPhysicalDeviceMemoryProperties(phys, &mem);
    for (uint32_t i = 0; i < mem.memoryHeapCount; i++)
        if ((mem.memoryHeaps[i].flags & VK_MEMORY_HEAP_DEVICE_LOCAL_BIT) && mem.memoryHeaps[i].size > info->memory_bytes)
            info->memory_bytes = mem.memoryHeaps[i].size;
}
