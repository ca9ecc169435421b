/* Capability record -> kernel paths: the pure decision function, the architecture guess, the quirk table. Knows no backend. */
#ifndef FP8_DEVICE_H
#define FP8_DEVICE_H

#include "../core/internal.h"

/* Decide the verdict for a device from its capability record and the build's features
 * (fp8_build_features()). Pure: no I/O, no globals, so fixtures can drive it in tests. */
void fp8i_decide(const fp8_device_info *info, uint32_t build_features, fp8_device_verdict *verdict);
/* The VK_NV_cooperative_matrix2 shape the workgroup-scope GEMM (gemm_coopmat.comp's coopmat2 build) needs: f16 x f16 ->
 * f32 at workgroup scope with every feature its SPIR-V declares; NULL where the device lacks any of it. */
const fp8_matrix_shape *fp8i_coopmat2_shape(const fp8_device_info *info);

/* The architecture a record points to ("amd-rdna3", "intel-xe2", "nvidia-hopper", "adreno-7xx", ...), or ""
 * when the record does not tell. Pure; the string is static. Quirk rules match on it. */
const char *fp8i_arch_of(const fp8_device_info *info);

/* Vulkan component-type value (VkComponentTypeKHR) -> fp8_dtype; FP8_DTYPE_INVALID for types without one
 * (int16, 64-bit, packed int8). Lives here so that fixtures and the probe agree on the mapping. */
fp8_dtype fp8i_dtype_from_vk_component(int32_t component_type);

#endif
