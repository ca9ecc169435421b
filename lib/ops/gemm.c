/* fp8_gemm front door: the one place where GEMM shapes, strides, dtypes, scales and bounds are checked,
 * and where the path is chosen before the backend's gemm slot runs. */
#include "../backend/backend.h"
#include "../format/format.h"
#include "ops.h"

#include <math.h>

static fp8_backend backend_of_path(fp8_path p)
{
    switch (p) {
    case FP8_PATH_CPU_REFERENCE: return FP8_BACKEND_CPU;
    case FP8_PATH_VK_GEMV: case FP8_PATH_VK_GEMM_TILED: case FP8_PATH_VK_GEMM_NV_COOPMAT:
    case FP8_PATH_VK_GEMM_KHR_COOPMAT: case FP8_PATH_VK_GEMM_FLOAT8: case FP8_PATH_VK_GEMM_NV_COOPMAT2:
        return FP8_BACKEND_VULKAN;
    case FP8_PATH_CL_GEMV: case FP8_PATH_CL_GEMM_TILED: case FP8_PATH_CL_CLBLAST: return FP8_BACKEND_OPENCL;
    default: return 0;
    }
}

fp8_status fp8i_check_matrix(const fp8_device *dev, const char *what, const fp8_operand *op, uint32_t rows,
                             uint32_t cols, fp8i_matrix *out)
{
    const fp8_context *ctx = dev->ctx;
    if (!op->buffer) return FP8I_FAIL(ctx, FP8_ERR_NULL_POINTER, "%s: no buffer", what);
    if (op->buffer->dev != dev) return FP8I_FAIL(ctx, FP8_ERR_WRONG_DEVICE, "%s: buffer of another device", what);
    const unsigned bits = fp8_dtype_bits(op->dtype);
    if (!bits) return FP8I_FAIL(ctx, FP8_ERR_UNSUPPORTED_DTYPE, "%s: invalid dtype %d", what, (int)op->dtype);
    const size_t stride = op->row_stride ? op->row_stride : cols;
    if (stride < cols)
        return FP8I_FAIL(ctx, FP8_ERR_STRIDE, "%s: row stride %zu is smaller than the row (%u)", what, stride, cols);
    if (bits == 4 && (stride & 1))
        return FP8I_FAIL(ctx, FP8_ERR_STRIDE, "%s: E2M1 rows must start on whole bytes (even stride)", what);
    if (bits >= 16 && op->offset % (bits / 8))
        return FP8I_FAIL(ctx, FP8_ERR_STRIDE, "%s: offset %zu is not a multiple of the element size", what, op->offset);
    /* Extent of the matrix in elements: (rows - 1) * stride + cols, then bytes. */
    size_t elems, bytes, end;
    if (!fp8i_mul_size(rows - 1, stride, &elems) || !fp8i_add_size(elems, cols, &elems) ||
        fp8_dtype_storage_size(op->dtype, elems, &bytes) != FP8_OK || !fp8i_add_size(op->offset, bytes, &end))
        return FP8I_FAIL(ctx, FP8_ERR_SIZE_OVERFLOW, "%s: size of %u x %u (stride %zu) overflows", what, rows, cols, stride);
    if (end > op->buffer->size)
        return FP8I_FAIL(ctx, FP8_ERR_BUFFER_TOO_SMALL, "%s: needs %zu bytes from offset %zu, buffer has %zu", what,
                         bytes, op->offset, op->buffer->size);
    out->buffer = op->buffer;
    out->offset = op->offset;
    out->dtype = op->dtype;
    out->row_stride = stride;
    return FP8_OK;
}

fp8_status fp8i_check_scales(const fp8_device *dev, const char *what, const fp8_scales *sc, uint32_t rows,
                             uint32_t cols, fp8i_scales *out)
{
    const fp8_context *ctx = dev->ctx;
    fp8i_scale_shape shape;
    fp8_status st = fp8i_scale_shape_resolve(&sc->layout, rows, cols, &shape);
    if (st != FP8_OK) return FP8I_FAIL(ctx, st, "%s: bad scale layout (kind %d, dtype %d, block %ux%u)", what,
                                       (int)sc->layout.kind, (int)sc->layout.dtype, sc->layout.block_rows,
                                       sc->layout.block_cols);
    float ts = sc->tensor_scale == 0.0f ? 1.0f : sc->tensor_scale;
    if (!isfinite(ts)) return FP8I_FAIL(ctx, FP8_ERR_NOT_FINITE, "%s: tensor_scale is not finite", what);
    fp8i_scales r = {0};
    r.tensor_scale = ts;
    r.kind = sc->layout.kind;
    r.block_rows = shape.block_rows ? shape.block_rows : rows;
    r.block_cols = shape.block_cols ? shape.block_cols : cols;
    r.block_row_count = shape.block_row_count ? shape.block_row_count : 1;
    r.blocks_per_row = shape.blocks_per_row ? shape.blocks_per_row : 1;
    if (sc->layout.kind != FP8_SCALE_NONE) {
        if (!sc->buffer) return FP8I_FAIL(ctx, FP8_ERR_NULL_POINTER, "%s: scale layout given without a buffer", what);
        if (sc->buffer->dev != dev) return FP8I_FAIL(ctx, FP8_ERR_WRONG_DEVICE, "%s: buffer of another device", what);
        const size_t esize = fp8_dtype_bits(shape.dtype) / 8;
        size_t bytes, end;
        if (sc->offset % esize) return FP8I_FAIL(ctx, FP8_ERR_STRIDE, "%s: misaligned scale offset %zu", what, sc->offset);
        if (!fp8i_mul_size(shape.count, esize, &bytes) || !fp8i_add_size(sc->offset, bytes, &end))
            return FP8I_FAIL(ctx, FP8_ERR_SIZE_OVERFLOW, "%s: scale tensor size overflows", what);
        if (end > sc->buffer->size)
            return FP8I_FAIL(ctx, FP8_ERR_BUFFER_TOO_SMALL, "%s: %zu scales (%zu bytes) need more than the %zu-byte buffer",
                             what, shape.count, bytes, sc->buffer->size);
        r.dtype = shape.dtype;
        r.buffer = sc->buffer;
        r.offset = sc->offset;
    }
    *out = r;
    return FP8_OK;
}

/* Byte range [begin, end) of one buffer that a validated operand touches, for alias checks. */
typedef struct byte_range {
    const fp8_buffer *buffer;
    size_t begin, end;
} byte_range;

static byte_range matrix_range(const fp8i_matrix *m, uint32_t rows, uint32_t cols)
{
    size_t bytes = 0; /* cannot overflow: fp8i_check_matrix computed the same extent */
    fp8_dtype_storage_size(m->dtype, (size_t)(rows - 1) * m->row_stride + cols, &bytes);
    return (byte_range){m->buffer, m->offset, m->offset + bytes};
}

static byte_range scales_range(const fp8i_scales *s)
{
    if (!s->buffer) return (byte_range){0};
    const size_t count = (size_t)s->block_row_count * s->blocks_per_row; /* checked by fp8i_check_scales */
    return (byte_range){s->buffer, s->offset, s->offset + count * (fp8_dtype_bits(s->dtype) / 8)};
}

static bool overlaps(byte_range a, byte_range b)
{
    return a.buffer && a.buffer == b.buffer && a.begin < b.end && b.begin < a.end;
}

bool fp8i_path_runs_on(fp8_path path, fp8_backend backend) { return backend_of_path(path) == backend; }

/* See FP8I_GEMV_MAX_M. */
bool fp8i_gemm_decode_sized(fp8_backend backend, fp8_device_type type, bool expected_fast, uint32_t m, fp8_dtype w)
{
    if (backend == FP8_BACKEND_OPENCL && type == FP8_DEVICE_CPU) return m <= FP8I_GEMV_MAX_M_CL_CPU;
    if (!expected_fast) return m <= FP8I_GEMV_MAX_M;
    const bool fp8 = fp8i_is_quantized(w) && fp8_dtype_bits(w) == 8;
    return m <= FP8I_GEMV_MAX_M_MATRIX || (m == FP8I_GEMV_MAX_M && fp8);
}

static bool decode_sized(const fp8_device *dev, const fp8i_gemm_args *a)
{
    return fp8i_gemm_decode_sized(dev->backend->id, dev->entry->info.type, dev->entry->verdict.expected_fast, a->m,
                                  a->w.dtype);
}

static fp8_path preferred_path(const fp8_device *dev, const fp8i_gemm_args *a)
{
    const fp8_device_verdict *v = &dev->entry->verdict;
    if (dev->forced_path != FP8_PATH_AUTO && backend_of_path(dev->forced_path) == dev->backend->id)
        return dev->forced_path;
    return decode_sized(dev, a) ? v->gemv_path : v->gemm_path;
}

static bool supports(const fp8_device *dev, fp8_path p, const fp8i_gemm_args *a)
{
    if (backend_of_path(p) != dev->backend->id) return false;
    return dev->backend->supports_path ? dev->backend->supports_path(dev, p, a) : true;
}

static fp8_status validate(const fp8_device *dev, const fp8_gemm_desc *d, fp8i_gemm_args *a)
{
    const fp8_context *ctx = dev->ctx;
    fp8_status st;
    if (d->m == 0 || d->n == 0 || d->k == 0)
        return FP8I_FAIL(ctx, FP8_ERR_SHAPE, "gemm: zero dimension (M=%u N=%u K=%u)", d->m, d->n, d->k);
    *a = (fp8i_gemm_args){.m = d->m, .n = d->n, .k = d->k};

    if (!fp8i_is_quantized(d->w.dtype))
        return FP8I_FAIL(ctx, FP8_ERR_UNSUPPORTED_DTYPE, "gemm: weights must be FP8 or FP4, got %s", fp8_dtype_name(d->w.dtype));
    if (!fp8i_is_float(d->x.dtype) && !fp8i_is_quantized(d->x.dtype))
        return FP8I_FAIL(ctx, FP8_ERR_UNSUPPORTED_DTYPE, "gemm: activation dtype %s", fp8_dtype_name(d->x.dtype));
    if (!fp8i_is_float(d->y.dtype))
        return FP8I_FAIL(ctx, FP8_ERR_UNSUPPORTED_DTYPE, "gemm: output must be f32, f16 or bf16, got %s",
                         fp8_dtype_name(d->y.dtype));
    if ((st = fp8i_check_matrix(dev, "gemm W", &d->w, d->n, d->k, &a->w)) != FP8_OK) return st;
    if ((st = fp8i_check_matrix(dev, "gemm X", &d->x, d->m, d->k, &a->x)) != FP8_OK) return st;
    if ((st = fp8i_check_matrix(dev, "gemm Y", &d->y, d->m, d->n, &a->y)) != FP8_OK) return st;
    if (fp8i_is_float(d->x.dtype) && d->x_scales.layout.kind != FP8_SCALE_NONE)
        return FP8I_FAIL(ctx, FP8_ERR_SCALE_LAYOUT, "gemm: float activations take no scale tensor");
    if ((st = fp8i_check_scales(dev, "gemm W scales", &d->w_scales, d->n, d->k, &a->w_scales)) != FP8_OK) return st;
    if ((st = fp8i_check_scales(dev, "gemm X scales", &d->x_scales, d->m, d->k, &a->x_scales)) != FP8_OK) return st;
    /* fp8.h lists the activation scale kinds and COL is not one (a BLOCK of M x 1 expresses it), so
     * backends may special-case the listed kinds only. */
    if (d->x_scales.layout.kind == FP8_SCALE_COL)
        return FP8I_FAIL(ctx, FP8_ERR_SCALE_LAYOUT, "gemm: activations take NONE, TENSOR, ROW or BLOCK scales, not COL");
    if (d->bias.buffer) {
        if (!fp8i_is_float(d->bias.dtype))
            return FP8I_FAIL(ctx, FP8_ERR_UNSUPPORTED_DTYPE, "gemm: bias must be f32, f16 or bf16");
        fp8_operand b = d->bias;
        b.row_stride = 0;
        if ((st = fp8i_check_matrix(dev, "gemm bias", &b, 1, d->n, &a->bias)) != FP8_OK) return st;
    }
    /* Y is written while every other operand is read: no byte of it may alias them. */
    const byte_range y = matrix_range(&a->y, d->m, d->n);
    const byte_range inputs[] = {
        matrix_range(&a->w, d->n, d->k), matrix_range(&a->x, d->m, d->k), scales_range(&a->w_scales),
        scales_range(&a->x_scales), a->bias.buffer ? matrix_range(&a->bias, 1, d->n) : (byte_range){0},
    };
    for (size_t i = 0; i < sizeof inputs / sizeof inputs[0]; i++)
        if (overlaps(y, inputs[i])) return FP8I_FAIL(ctx, FP8_ERR_INVALID_ARGUMENT, "gemm: output overlaps an input");
    return FP8_OK;
}

static fp8_status resolve_path(const fp8_device *dev, const fp8_gemm_desc *d, fp8i_gemm_args *a)
{
    if (d->path != FP8_PATH_AUTO) {
        if ((unsigned)d->path >= FP8_PATH_COUNT_)
            return FP8I_FAIL(dev->ctx, FP8_ERR_INVALID_ARGUMENT, "gemm: unknown path %d", (int)d->path);
        if (!supports(dev, d->path, a))
            return FP8I_FAIL(dev->ctx, FP8_ERR_UNSUPPORTED, "gemm: path %s cannot run this GEMM on %s",
                             fp8_path_name(d->path), dev->entry->info.name);
        a->path = d->path;
        return FP8_OK;
    }
    /* The forced or preferred path, else the verdict's for this M, else the first of this backend's paths that
     * can run it (a dtype or alignment the preferred kernel lacks), in the order of what is faster where it
     * runs: GEMV first for decode-sized M, last for prefill. */
    static const fp8_path by_speed_prefill[] = {
        FP8_PATH_VK_GEMM_FLOAT8, FP8_PATH_VK_GEMM_KHR_COOPMAT, FP8_PATH_VK_GEMM_NV_COOPMAT,
        FP8_PATH_VK_GEMM_NV_COOPMAT2, FP8_PATH_VK_GEMM_TILED, FP8_PATH_VK_GEMV,
        FP8_PATH_CL_CLBLAST, FP8_PATH_CL_GEMM_TILED, FP8_PATH_CL_GEMV, FP8_PATH_CPU_REFERENCE};
    static const fp8_path by_speed_decode[] = {
        FP8_PATH_VK_GEMV, FP8_PATH_VK_GEMM_FLOAT8, FP8_PATH_VK_GEMM_KHR_COOPMAT, FP8_PATH_VK_GEMM_NV_COOPMAT,
        FP8_PATH_VK_GEMM_NV_COOPMAT2, FP8_PATH_VK_GEMM_TILED,
        FP8_PATH_CL_GEMV, FP8_PATH_CL_CLBLAST, FP8_PATH_CL_GEMM_TILED, FP8_PATH_CPU_REFERENCE};
    _Static_assert(sizeof by_speed_prefill / sizeof by_speed_prefill[0] == FP8_PATH_COUNT_ - 1 &&
                       sizeof by_speed_decode / sizeof by_speed_decode[0] == FP8_PATH_COUNT_ - 1,
                   "every path in both orders");
    const fp8_device_verdict *v = &dev->entry->verdict;
    const bool small = decode_sized(dev, a);
    const fp8_path *order = small ? by_speed_decode : by_speed_prefill;
    fp8_path chosen = FP8_PATH_AUTO;
    const fp8_path candidates[] = {preferred_path(dev, a), small ? v->gemv_path : v->gemm_path};
    for (size_t i = 0; i < sizeof candidates / sizeof candidates[0] && chosen == FP8_PATH_AUTO; i++)
        if (supports(dev, candidates[i], a)) chosen = candidates[i];
    for (int i = 0; i < FP8_PATH_COUNT_ - 1 && chosen == FP8_PATH_AUTO; i++)
        if (supports(dev, order[i], a)) chosen = order[i];
    if (chosen != FP8_PATH_AUTO) {
        a->path = chosen;
        if (!fp8i_path_runs_on(dev->forced_path, dev->backend->id) && dev->backend->refine_path) {
            const fp8_path r = dev->backend->refine_path(dev, a, a->path);
            if (r != a->path && supports(dev, r, a)) a->path = r;
        }
        return FP8_OK;
    }
    return FP8I_FAIL(dev->ctx, FP8_ERR_UNSUPPORTED, "gemm: no path of %s runs W=%s X=%s Y=%s",
                     dev->entry->info.name, fp8_dtype_name(d->w.dtype), fp8_dtype_name(d->x.dtype),
                     fp8_dtype_name(d->y.dtype));
}

fp8_status fp8_gemm_select_path(const fp8_device *dev, const fp8_gemm_desc *desc, fp8_path *path)
{
    if (!dev || !desc || !path) return FP8_ERR_NULL_POINTER;
    fp8i_gemm_args a;
    fp8_status st = validate(dev, desc, &a);
    if (st == FP8_OK) st = resolve_path(dev, desc, &a);
    if (st == FP8_OK) *path = a.path;
    return st;
}

fp8_status fp8_gemm(fp8_device *dev, const fp8_gemm_desc *desc)
{
    if (!dev || !desc) return FP8_ERR_NULL_POINTER;
    fp8i_gemm_args a;
    fp8_status st = validate(dev, desc, &a);
    if (st == FP8_OK) st = resolve_path(dev, desc, &a);
    if (st != FP8_OK) return st;
    FP8I_DEBUG(dev->ctx, "gemm M=%u N=%u K=%u W=%s X=%s -> %s", a.m, a.n, a.k, fp8_dtype_name(a.w.dtype),
               fp8_dtype_name(a.x.dtype), fp8_path_name(a.path));
    return dev->backend->gemm(dev, &a);
}
