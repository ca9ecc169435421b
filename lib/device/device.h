/* Capability record -> kernel paths: the pure decision function and the quirk table. Knows no backend. */
#ifndef FP8_DEVICE_H
#define FP8_DEVICE_H

#include "../core/internal.h"

/* Decide the verdict for a device from its capability record and the build's features
 * (fp8_build_features()). Pure: no I/O, no globals, so fixtures can drive it in tests. */
void fp8i_decide(const fp8_device_info *info, uint32_t build_features, fp8_device_verdict *verdict);

#endif
