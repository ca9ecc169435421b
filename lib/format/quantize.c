/* Host quantization and dequantization of matrices with a separate scale tensor. */
#include "format.h"

#include <math.h>

typedef struct qview {
    uint32_t rows, cols;
    fp8_dtype src_dtype, dst_dtype;
    size_t src_stride, dst_stride;
    fp8i_scale_shape scale;
} qview;

/* Shared argument checks of quantize/dequantize. `q_dtype` is the quantized side, `f_dtype` the float side. */
static fp8_status check_desc(const fp8_quantize_desc *d, fp8_dtype q_dtype, fp8_dtype f_dtype, bool quantizing, qview *v)
{
    if (!d) return FP8_ERR_NULL_POINTER;
    if (d->rows == 0 || d->cols == 0) return FP8_ERR_SHAPE;
    if (!d->src || !d->dst) return FP8_ERR_NULL_POINTER;
    if (!fp8i_is_quantized(q_dtype)) return FP8_ERR_UNSUPPORTED_DTYPE;
    if (quantizing ? !fp8i_is_float(f_dtype) : f_dtype != FP8_F32) return FP8_ERR_UNSUPPORTED_DTYPE;
    v->rows = d->rows;
    v->cols = d->cols;
    v->src_dtype = d->src_dtype;
    v->dst_dtype = d->dst_dtype;
    v->src_stride = d->src_row_stride ? d->src_row_stride : d->cols;
    v->dst_stride = d->dst_row_stride ? d->dst_row_stride : d->cols;
    if (v->src_stride < d->cols || v->dst_stride < d->cols) return FP8_ERR_STRIDE;
    size_t q_stride = quantizing ? v->dst_stride : v->src_stride;
    if (q_dtype == FP8_E2M1 && (q_stride & 1)) return FP8_ERR_STRIDE;

    /* The destination is a caller buffer of known size: never write past it. */
    size_t elems, bytes;
    if (!fp8i_mul_size(d->rows - 1, v->dst_stride, &elems) || !fp8i_add_size(elems, d->cols, &elems))
        return FP8_ERR_SIZE_OVERFLOW;
    fp8_status st = fp8_dtype_storage_size(d->dst_dtype, elems, &bytes);
    if (st != FP8_OK) return st;
    if (d->dst_bytes < bytes) return FP8_ERR_BUFFER_TOO_SMALL;
    /* The source size is implied by the shape; still reject shapes whose extent overflows. */
    if (!fp8i_mul_size(d->rows - 1, v->src_stride, &elems) || !fp8i_add_size(elems, d->cols, &elems) ||
        fp8_dtype_storage_size(d->src_dtype, elems, &bytes) != FP8_OK)
        return FP8_ERR_SIZE_OVERFLOW;

    st = fp8i_scale_shape_resolve(&d->scale_layout, d->rows, d->cols, &v->scale);
    if (st != FP8_OK) return st;
    if (v->scale.count) {
        if (!d->scale) return FP8_ERR_NULL_POINTER;
        size_t sbytes;
        if (!fp8i_mul_size(v->scale.count, fp8_dtype_bits(v->scale.dtype) / 8, &sbytes)) return FP8_ERR_SIZE_OVERFLOW;
        if (d->scale_bytes < sbytes) return FP8_ERR_BUFFER_TOO_SMALL;
        if (v->scale.dtype == FP8_E4M3FN && !d->tensor_scale) return FP8_ERR_NULL_POINTER;
    }
    return FP8_OK;
}

/* OCP MX emax of an element format: the exponent of its largest normal value, floor(log2(max)). Derived
 * from the format's max so that FNUZ formats get theirs (E4M3FNUZ: 240 -> 7, not E4M3FN's 8). */
static int elem_emax(fp8_dtype dtype) { return ilogb(fp8_dtype_max(dtype)); }

static float src_at(const fp8_quantize_desc *d, const qview *v, uint32_t r, uint32_t c)
{
    return fp8i_load(v->src_dtype, d->src, (size_t)r * v->src_stride + c);
}

/* Scale value (decoded, in float) for a block whose largest magnitude is amax; stores its code. */
static float block_scale(const qview *v, float amax, float tensor_scale, void *scale, size_t index)
{
    const float qmax = (float)fp8_dtype_max(v->dst_dtype);
    switch (v->scale.dtype) {
    case FP8_E8M0: {
        int e = -127;
        if (amax > 0.0f) {
            int ex;
            (void)frexpf(amax, &ex);         /* amax = f * 2^ex, f in [0.5, 1): floor(log2(amax)) = ex - 1 */
            e = ex - 1 - elem_emax(v->dst_dtype);
            if (e < -127) e = -127;
            if (e > 127) e = 127;
        }
        ((uint8_t *)scale)[index] = (uint8_t)(e + 127);
        return ldexpf(1.0f, e);
    }
    case FP8_E4M3FN: {
        /* NVFP4: the block scale is itself quantized to E4M3 relative to the tensor scale. */
        uint32_t code = fp8i_encode(FP8_E4M3FN, amax / qmax / tensor_scale, FP8_OVERFLOW_SATURATE);
        ((uint8_t *)scale)[index] = (uint8_t)code;
        return fp8i_decode(FP8_E4M3FN, code) * tensor_scale;
    }
    default: {
        float s = amax > 0.0f ? amax / qmax : 1.0f;
        fp8i_store(FP8_F32, scale, index, s, FP8_OVERFLOW_SATURATE); /* caller memory: maybe unaligned */
        return s;
    }
    }
}

fp8_status fp8_quantize(const fp8_quantize_desc *d)
{
    qview v;
    fp8_status st = check_desc(d, d ? d->dst_dtype : 0, d ? d->src_dtype : 0, true, &v);
    if (st != FP8_OK) return st;

    float tensor_amax = 0.0f;
    for (uint32_t r = 0; r < v.rows; r++)
        for (uint32_t c = 0; c < v.cols; c++) {
            float x = src_at(d, &v, r, c);
            if (!isfinite(x)) return FP8_ERR_NOT_FINITE;
            if (fabsf(x) > tensor_amax) tensor_amax = fabsf(x);
        }
    float tensor_scale = 1.0f;
    if (v.scale.dtype == FP8_E4M3FN) {
        tensor_scale = tensor_amax / (448.0f * (float)fp8_dtype_max(v.dst_dtype));
        if (!(tensor_scale > 0.0f)) tensor_scale = 1.0f;
    }
    if (d->tensor_scale) *d->tensor_scale = tensor_scale;

    if (v.scale.count == 0) { /* FP8_SCALE_NONE: a plain saturating cast */
        for (uint32_t r = 0; r < v.rows; r++)
            for (uint32_t c = 0; c < v.cols; c++)
                fp8i_store(v.dst_dtype, d->dst, (size_t)r * v.dst_stride + c, src_at(d, &v, r, c), FP8_OVERFLOW_SATURATE);
        return FP8_OK;
    }
    for (uint32_t br = 0; br < v.scale.block_row_count; br++) {
        const uint32_t r0 = br * v.scale.block_rows;
        const uint32_t r1 = r0 + v.scale.block_rows < v.rows ? r0 + v.scale.block_rows : v.rows;
        for (uint32_t bc = 0; bc < v.scale.blocks_per_row; bc++) {
            const uint32_t c0 = bc * v.scale.block_cols;
            const uint32_t c1 = c0 + v.scale.block_cols < v.cols ? c0 + v.scale.block_cols : v.cols;
            float amax = 0.0f;
            for (uint32_t r = r0; r < r1; r++)
                for (uint32_t c = c0; c < c1; c++) {
                    float a = fabsf(src_at(d, &v, r, c));
                    if (a > amax) amax = a;
                }
            const float s = block_scale(&v, amax, tensor_scale, d->scale, (size_t)br * v.scale.blocks_per_row + bc);
            for (uint32_t r = r0; r < r1; r++)
                for (uint32_t c = c0; c < c1; c++) {
                    /* Divide (not multiply by a reciprocal): the reference rule is q = cast(x / s). */
                    float q = s != 0.0f ? src_at(d, &v, r, c) / s : 0.0f;
                    fp8i_store(v.dst_dtype, d->dst, (size_t)r * v.dst_stride + c, q, FP8_OVERFLOW_SATURATE);
                }
        }
    }
    return FP8_OK;
}

fp8_status fp8_dequantize(const fp8_quantize_desc *d)
{
    qview v;
    fp8_status st = check_desc(d, d ? d->src_dtype : 0, d ? d->dst_dtype : 0, false, &v);
    if (st != FP8_OK) return st;
    /* The same rule as fp8_scales.tensor_scale in a GEMM: applied to every element, 0 means 1. */
    double t = d->tensor_scale && *d->tensor_scale != 0.0f ? *d->tensor_scale : 1.0;
    if (!isfinite(t)) return FP8_ERR_NOT_FINITE;
    for (uint32_t r = 0; r < v.rows; r++)
        for (uint32_t c = 0; c < v.cols; c++) {
            double s = 1.0;
            if (v.scale.count)
                s = fp8i_load(v.scale.dtype, d->scale,
                              (size_t)(r / v.scale.block_rows) * v.scale.blocks_per_row + c / v.scale.block_cols);
            double q = fp8i_load(v.src_dtype, d->src, (size_t)r * v.src_stride + c);
            fp8i_store(FP8_F32, d->dst, (size_t)r * v.dst_stride + c, (float)(q * s * t), FP8_OVERFLOW_CAST);
        }
    return FP8_OK;
}
