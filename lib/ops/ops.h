/* Validation helpers shared by the operations' front doors (gemm.c, moe.c). */
#ifndef FP8_OPS_H
#define FP8_OPS_H

#include "../backend/backend.h"

/* Largest M for which the GEMV path is preferred over the tiled GEMM. */
#define FP8I_GEMV_MAX_M 16

/* Check a rows x cols operand on `dev`: buffer, device, dtype, stride, alignment and bounds. */
fp8_status fp8i_check_matrix(const fp8_device *dev, const char *what, const fp8_operand *op, uint32_t rows,
                             uint32_t cols, fp8i_matrix *out);
/* Check and resolve a scale tensor over a rows x cols matrix. */
fp8_status fp8i_check_scales(const fp8_device *dev, const char *what, const fp8_scales *sc, uint32_t rows,
                             uint32_t cols, fp8i_scales *out);
/* Whether `path` belongs to `backend`. */
bool fp8i_path_runs_on(fp8_path path, fp8_backend backend);

#endif
