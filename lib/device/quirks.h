/* Known driver quirks: one table of data, matched against the capability record. */
#ifndef FP8_QUIRKS_H
#define FP8_QUIRKS_H

#include "../core/internal.h"

enum {
    FP8I_QUIRK_COOPMAT_UNRELIABLE = 1u << 0, /* reports cooperative matrices the hardware cannot run well */
    FP8I_QUIRK_COOPMAT_SLOW = 1u << 1,       /* cooperative matrices slower than plain FMA tiles */
    FP8I_QUIRK_NO_FP16_DENORMALS = 1u << 2,  /* fp16 flushes denormals: the E4M3 bit-trick decode loses subnormals */
    FP8I_QUIRK_SMALL_BUFFER_RANGE = 1u << 3, /* storage buffer range well below device memory */
};

/* Bit set of quirks that apply to a device. */
uint32_t fp8i_quirks_for(const fp8_device_info *info);

#endif
