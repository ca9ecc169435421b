/* Scale layouts: every kind reduces to a (block_rows x block_cols) grid over the matrix. */
#include "format.h"

fp8_status fp8i_scale_shape_resolve(const fp8_scale_layout *layout, uint32_t rows, uint32_t cols,
                                    fp8i_scale_shape *shape)
{
    if (!layout || !shape) return FP8_ERR_NULL_POINTER;
    if (rows == 0 || cols == 0) return FP8_ERR_SHAPE;
    fp8i_scale_shape s = {0};
    fp8_dtype dt = layout->dtype == FP8_DTYPE_INVALID ? FP8_F32 : layout->dtype;
    switch (layout->kind) {
    case FP8_SCALE_NONE: *shape = s; return FP8_OK;
    case FP8_SCALE_TENSOR: s.block_rows = rows; s.block_cols = cols; break;
    case FP8_SCALE_ROW: s.block_rows = 1; s.block_cols = cols; break;
    case FP8_SCALE_COL: s.block_rows = rows; s.block_cols = 1; break;
    case FP8_SCALE_BLOCK:
        if (layout->block_rows == 0 || layout->block_cols == 0) return FP8_ERR_SCALE_LAYOUT;
        /* A block larger than the matrix is one partial block: clamp so the grid math stays simple. */
        s.block_rows = layout->block_rows < rows ? layout->block_rows : rows;
        s.block_cols = layout->block_cols < cols ? layout->block_cols : cols;
        break;
    default: return FP8_ERR_SCALE_LAYOUT;
    }
    if (dt != FP8_F32 && dt != FP8_E8M0 && dt != FP8_E4M3FN) return FP8_ERR_SCALE_LAYOUT;
    s.dtype = dt;
    s.block_row_count = rows / s.block_rows + (rows % s.block_rows != 0);
    s.blocks_per_row = cols / s.block_cols + (cols % s.block_cols != 0);
    if (!fp8i_mul_size(s.block_row_count, s.blocks_per_row, &s.count)) return FP8_ERR_SIZE_OVERFLOW; /* 32-bit size_t */
    *shape = s;
    return FP8_OK;
}

fp8_status fp8_scale_count(const fp8_scale_layout *layout, uint32_t rows, uint32_t cols, size_t *count)
{
    if (!count) return FP8_ERR_NULL_POINTER;
    fp8i_scale_shape s;
    fp8_status st = fp8i_scale_shape_resolve(layout, rows, cols, &s);
    if (st == FP8_OK) *count = s.count;
    return st;
}
