/* Host-side bit rules of every number format and element access into packed arrays. */
#ifndef FP8_FORMAT_H
#define FP8_FORMAT_H

#include "../core/internal.h"

/* Scalar codecs (fp8_encode_value/fp8_decode_value are thin wrappers of these). */
uint32_t fp8i_encode(fp8_dtype dtype, float value, fp8_overflow mode);
float fp8i_decode(fp8_dtype dtype, uint32_t code);

/* True for the dtypes a quantized tensor may hold (E4M3FN, E5M2, E4M3FNUZ, E5M2FNUZ, E2M1). */
bool fp8i_is_quantized(fp8_dtype dtype);
/* True for F32, F16, BF16. */
bool fp8i_is_float(fp8_dtype dtype);

/* Element `index` of a packed array (E2M1: element 2i in the low nibble of byte i). */
float fp8i_load(fp8_dtype dtype, const void *base, size_t index);
void fp8i_store(fp8_dtype dtype, void *base, size_t index, float value, fp8_overflow mode);

/* Byte offset of element `index` in packed `dtype` storage (index must be even for E2M1). */
static inline size_t fp8i_byte_offset(fp8_dtype dtype, size_t index)
{
    return dtype == FP8_E2M1 ? index / 2 : index * (fp8_dtype_bits(dtype) / 8);
}

#endif

/* A scale layout resolved against a rows x cols matrix. */
typedef struct fp8i_scale_shape {
    fp8_dtype dtype;              /* F32 / E8M0 / E4M3FN; INVALID for NONE */
    uint32_t block_rows, block_cols;
    uint32_t block_row_count, blocks_per_row;
    size_t count;                 /* block_row_count * blocks_per_row; 0 for NONE */
} fp8i_scale_shape;

/* Validate `layout` for a rows x cols matrix and resolve its block shape. FP8_ERR_SCALE_LAYOUT for
 * an unknown kind or scale dtype or a zero block; FP8_ERR_SHAPE for a zero dimension;
 * FP8_ERR_SIZE_OVERFLOW when the count does not fit size_t (32-bit hosts only). */
fp8_status fp8i_scale_shape_resolve(const fp8_scale_layout *layout, uint32_t rows, uint32_t cols,
                                    fp8i_scale_shape *shape);
