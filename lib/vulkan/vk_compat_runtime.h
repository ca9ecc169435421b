/* Vulkan declarations the runtime needs that Debian 12's headers (1.3.239) lack. Own names, so that they
 * never collide with vk_compat.h or newer headers; values are from the Vulkan registry. */
#ifndef FP8_VK_COMPAT_RUNTIME_H
#define FP8_VK_COMPAT_RUNTIME_H

#include <vulkan/vulkan.h>

/* VK_KHR_cooperative_matrix (registry: extension 507). */
#define FP8I_VK_KHR_COOPMAT_NAME "VK_KHR_cooperative_matrix"
#define FP8I_VK_STYPE_COOPMAT_FEATURES_KHR ((VkStructureType)1000506000)
#define FP8I_VK_STYPE_COOPMAT_PROPERTIES_KHR ((VkStructureType)1000506001)
#define FP8I_VK_COMPONENT_FLOAT16_KHR 0u
#define FP8I_VK_COMPONENT_FLOAT32_KHR 1u
#define FP8I_VK_SCOPE_SUBGROUP_KHR 3u

typedef struct fp8i_vk_coopmat_features_khr {
    VkStructureType sType;
    void *pNext;
    VkBool32 cooperativeMatrix;
    VkBool32 cooperativeMatrixRobustBufferAccess;
} fp8i_vk_coopmat_features_khr;

typedef struct fp8i_vk_coopmat_properties_khr {
    VkStructureType sType;
    void *pNext;
    uint32_t MSize, NSize, KSize;
    uint32_t AType, BType, CType, ResultType; /* VkComponentTypeKHR */
    VkBool32 saturatingAccumulation;
    uint32_t scope;                           /* VkScopeKHR */
} fp8i_vk_coopmat_properties_khr;

typedef VkResult(VKAPI_PTR *fp8i_pfn_coopmat_props_khr)(VkPhysicalDevice, uint32_t *, fp8i_vk_coopmat_properties_khr *);

#endif
