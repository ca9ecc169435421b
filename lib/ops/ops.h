/* Validation helpers shared by the operations' front doors (gemm.c, moe.c). */
#ifndef FP8_OPS_H
#define FP8_OPS_H

#include "../backend/backend.h"

/* Largest M for which the GEMV path is preferred over the tiled GEMM; where the verdict expects fast matrix
 * units, over the cooperative-matrix GEMM, except that FP8 weights keep the GEMV at M = 16. On the H100 the
 * cooperative-matrix GEMM was faster at M = 16 on 9 of 12 shapes (0.72-0.92x the GEMV's time; 1.05-1.71x on the
 * other three) and at M = 12 on none (docs/BENCHMARKS.md). On the H200, with the GEMV's sixteen-token shape of
 * run 158, E4M3 per-channel weights took 33 / 110 / 98 / 34 µs on the GEMV (run 158) against 36 / 137 / 187 /
 * 36 µs on the GEMM (run 157) on fp8bench's four shapes; MXFP4 43-143 µs against 37-125, so it keeps the GEMM.
 * Two processes, but the GEMV's previous shape measured the same in both, within 0.5%. E4M3 with 128x128 blocks
 * took 40 / 156 / 217 / 40 µs on the GEMM; its GEMV was not timed in the new shape (in the previous one it ran
 * within 1% of per-channel). */
#define FP8I_GEMV_MAX_M 16
#define FP8I_GEMV_MAX_M_MATRIX 15
/* The same on OpenCL CPU devices (PoCL), where each pass of the GEMV's four-token block decodes the weights
 * again at full cost: on a 2-core Xeon (4096 x 4096, E4M3 and MXFP4) the GEMV took 0.41-0.61x the tiled
 * kernel's time up to M = 4, 0.97-1.23x at M = 8 and 1.7-2.4x at M = 16 (docs/BENCHMARKS.md). */
#define FP8I_GEMV_MAX_M_CL_CPU 4

/* Whether a GEMM of m tokens with weights of dtype w is a decode batch for the GEMV on a device of this backend
 * and type whose verdict does or does not expect fast matrix units. */
bool fp8i_gemm_decode_sized(fp8_backend backend, fp8_device_type type, bool expected_fast, uint32_t m, fp8_dtype w);

/* Check a rows x cols operand on `dev`: buffer, device, dtype, stride, alignment and bounds. */
fp8_status fp8i_check_matrix(const fp8_device *dev, const char *what, const fp8_operand *op, uint32_t rows,
                             uint32_t cols, fp8i_matrix *out);
/* Check and resolve a scale tensor over a rows x cols matrix. */
fp8_status fp8i_check_scales(const fp8_device *dev, const char *what, const fp8_scales *sc, uint32_t rows,
                             uint32_t cols, fp8i_scales *out);
/* Whether `path` belongs to `backend`. */
bool fp8i_path_runs_on(fp8_path path, fp8_backend backend);

#endif
