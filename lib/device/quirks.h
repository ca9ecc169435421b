/* Known driver quirks: one table of data, matched against the capability record. */
#ifndef FP8_QUIRKS_H
#define FP8_QUIRKS_H

#include "../core/internal.h"

/* Bit numbers are public through fp8_quirk_name(); never renumber a released one. */
enum {
    FP8I_QUIRK_COOPMAT_UNRELIABLE = 1u << 0, /* reports cooperative matrices the hardware cannot run natively */
    FP8I_QUIRK_COOPMAT_SLOW = 1u << 1,       /* cooperative matrices slower than plain FMA tiles */
    FP8I_QUIRK_NO_FP16_DENORMALS = 1u << 2,  /* fp16 flushes denormals: the E4M3 bit-trick decode loses subnormals */
    FP8I_QUIRK_SMALL_BUFFER_RANGE = 1u << 3, /* storage buffer range well below device memory */
    FP8I_QUIRK_COOPMAT_QUERY_CRASH = 1u << 4,/* vkGetPhysicalDeviceCooperativeMatrixPropertiesKHR crashes: skip it */
    FP8I_QUIRK_SHADER_COMPILER_UNRELIABLE = 1u << 5, /* pipeline creation fails for larger compute shaders */
    FP8I_QUIRK_PTX_FP8_MMA_EMULATED = 1u << 6,       /* PTX mma.sync on e4m3/e5m2 runs emulated (fp16 units) */
    FP8I_QUIRK_COUNT_ = 7
};

/* Bit set of quirks that apply to a device. Pure: reads only the record (and the architecture it implies). */
uint32_t fp8i_quirks_for(const fp8_device_info *info);

/* The public report behind one quirk bit, for logs ("llama.cpp PR #11074: ..."); NULL for an unknown bit. */
const char *fp8i_quirk_evidence(unsigned bit);

#endif
