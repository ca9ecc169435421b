/* Kernel parameter block of the GEMM kernels: one definition read by the host (C) and the kernels (OpenCL C). */
#ifndef FP8K_PARAMS_H
#define FP8K_PARAMS_H

/* 64-bit fields first, then 32-bit ones, and a size that is a multiple of 8: the layout is then the same on
 * every host ABI and every OpenCL compiler, so the block can be passed by value as one kernel argument. */
#ifdef __OPENCL_VERSION__
typedef ulong fp8k_u64;
typedef uint fp8k_u32;
#else
#include <stdint.h>
typedef uint64_t fp8k_u64;
typedef uint32_t fp8k_u32;
#endif

/* Dtype codes: the values of the public fp8_dtype enum. */
#define FP8K_E4M3FN 1
#define FP8K_E5M2 2
#define FP8K_E4M3FNUZ 3
#define FP8K_E5M2FNUZ 4
#define FP8K_E2M1 5
#define FP8K_E8M0 6
#define FP8K_F16 7
#define FP8K_BF16 8
#define FP8K_F32 9

/* How a scale tensor varies along K, chosen by the host so the kernels' hot loops stay simple. */
#define FP8K_SCALE_ROWCONST 0 /* one scale per row over the whole K (NONE, TENSOR, ROW, blocks as wide as K) */
#define FP8K_SCALE_K16 1      /* constant over each aligned run of 16 elements of K (block_cols % 16 == 0) */
#define FP8K_SCALE_GENERIC 2  /* anything else: looked up per element */

/* flags (the GEMM kernels take them as the compile-time WAL/XAL instead, so no load is chosen at run time) */
#define FP8K_W_ALIGNED 1u /* every weight row starts on a 16-byte boundary */
#define FP8K_X_ALIGNED 2u /* every activation row starts on a 16-byte boundary */

typedef struct fp8k_scale {
    fp8k_u64 offset;         /* bytes into the scale buffer */
    fp8k_u32 dtype;          /* 0: no scale tensor (every scale is 1), else F32 / E8M0 / E4M3FN */
    fp8k_u32 mode;           /* FP8K_SCALE_* */
    fp8k_u32 block_rows, block_cols, blocks_per_row;
    float tensor;            /* second-level scale on every element */
    /* Block index shifts, plus one: log2(block) + 1 for a power-of-two block, 32 for a block spanning the whole
     * dimension (any index shifts to 0), 0 when the index needs a division. 0 is the safe default, so code
     * that zero-fills this struct without knowing these fields stays correct. */
    fp8k_u32 rows_shift1, cols_shift1;
} fp8k_scale;

typedef struct fp8k_gemm_params {
    fp8k_u64 w_off, x_off, y_off, b_off; /* bytes */
    fp8k_u64 w_stride, x_stride;         /* bytes from one row to the next */
    fp8k_u64 y_stride;                   /* elements */
    fp8k_scale ws, xs;
    fp8k_u32 m, n, k;
    fp8k_u32 y_dtype, b_dtype;           /* b_dtype 0: no bias */
    fp8k_u32 flags;
} fp8k_gemm_params;

#endif
