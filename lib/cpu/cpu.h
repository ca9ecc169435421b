/* CPU backend internals. */
#ifndef FP8_CPU_H
#define FP8_CPU_H

#include "../backend/backend.h"

/* The reference GEMM: dequantize in double, accumulate in double, round once to the output dtype. */
fp8_status fp8i_cpu_gemm(fp8_device *dev, const fp8i_gemm_args *args);

/* The reference MoE pieces (cpu_moe.c); argument structs in lib/backend/moe.h. */
fp8_status fp8i_cpu_moe_route(fp8_device *dev, const struct fp8i_moe_route_args *args);
fp8_status fp8i_cpu_moe_group(fp8_device *dev, const struct fp8i_moe_group_args *args);
fp8_status fp8i_cpu_moe_quantize_rows(fp8_device *dev, const struct fp8i_moe_quant_args *args);
fp8_status fp8i_cpu_moe_grouped_gemm(fp8_device *dev, const struct fp8i_moe_gemm_args *args);
fp8_status fp8i_cpu_moe_combine(fp8_device *dev, const struct fp8i_moe_combine_args *args);

/* Host pointer of a CPU buffer. */
static inline void *fp8i_cpu_ptr(const fp8_buffer *buf) { return buf->impl; }

#endif
