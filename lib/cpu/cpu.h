/* CPU backend internals. */
#ifndef FP8_CPU_H
#define FP8_CPU_H

#include "../backend/backend.h"

/* The reference GEMM: dequantize in double, accumulate in double, round once to the output dtype. */
fp8_status fp8i_cpu_gemm(fp8_device *dev, const fp8i_gemm_args *args);

/* Host pointer of a CPU buffer. */
static inline void *fp8i_cpu_ptr(const fp8_buffer *buf) { return buf->impl; }

#endif
