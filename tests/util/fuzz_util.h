/* What the fuzz tests (test_fuzz_gemm.c, test_fuzz_moe.c) share: random offsets and strides of the kinds that
 * break bounds checks, the statuses a descriptor may earn, a log hook that counts Vulkan validation messages,
 * and the loop over one device of each backend. */
#ifndef FP8_TEST_FUZZ_UTIL_H
#define FP8_TEST_FUZZ_UTIL_H

#include "test_util.h"

/* Uniform in [0, n); n > 0. */
uint32_t fuzz_pick(test_rng *r, uint32_t n);
/* An operand offset: mostly 0 or a multiple of 16, sometimes misaligned or just below SIZE_MAX. */
size_t fuzz_offset(test_rng *r);
/* A row stride: mostly 0 (packed), sometimes short, 2^32 or just below SIZE_MAX. */
size_t fuzz_stride(test_rng *r);

/* Whether st is a refusal a descriptor's contents may earn; with data_errors, also FP8_OK and the data errors
 * FP8_ERR_NOT_FINITE and FP8_ERR_EXPERT_ID. Anything else (INTERNAL, BACKEND, DEVICE_LOST, ...) is a bug. */
bool fuzz_documented(fp8_status st, bool data_errors);

/* Opens the first device of each backend the build reaches, runs fn on it (iterations: $FP8_TEST_FUZZ_ITERS,
 * else cpu_iters on the CPU and gpu_iters elsewhere), with the Vulkan validation layer on where it is installed;
 * fails on any validation message. Returns test_finish(name). */
typedef void (*fuzz_device_fn)(fp8_device *dev, const fp8_device_info *info, int iters);
int fuzz_main(const char *name, fuzz_device_fn fn, int cpu_iters, int gpu_iters);

#endif
