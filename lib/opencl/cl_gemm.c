/* GEMM on OpenCL: the fused kernels (GEMV for small M, local-memory tiles otherwise), their parameter
 * block, and which path can run which arguments. */
#include "cl_internal.h"

#include "../../cl/params.h"

#include <stdio.h>

/* Work-group shape of gemv.cl: GEMV_G lanes per group of weight rows, GEMV_RPW groups by default. */
#define GEMV_G 32u
#define GEMV_RPW 4u

/* Kernel indices are 32-bit: keep every element index well inside that range. */
#define MAX_DIM (1u << 30)

static size_t row_bytes(fp8_dtype dt, size_t elements)
{
    size_t b = 0;
    fp8_dtype_storage_size(dt, elements, &b); /* validated sizes: cannot fail here */
    return b;
}

static void fill_scale(const fp8i_scales *s, fp8k_scale *out)
{
    out->offset = s->offset;
    out->dtype = s->dtype == FP8_DTYPE_INVALID ? 0u : (fp8k_u32)s->dtype;
    out->block_rows = s->block_rows;
    out->block_cols = s->block_cols;
    out->blocks_per_row = s->blocks_per_row;
    out->tensor = s->tensor_scale;
    out->mode = !out->dtype || s->blocks_per_row <= 1 ? FP8K_SCALE_ROWCONST
                : s->block_cols % 16 == 0            ? FP8K_SCALE_K16
                                                     : FP8K_SCALE_GENERIC;
}

static void fill_params(const fp8i_gemm_args *a, fp8k_gemm_params *p)
{
    *p = (fp8k_gemm_params){0};
    p->w_off = a->w.offset;
    p->x_off = a->x.offset;
    p->y_off = a->y.offset;
    p->w_stride = row_bytes(a->w.dtype, a->w.row_stride);
    p->x_stride = row_bytes(a->x.dtype, a->x.row_stride);
    p->y_stride = a->y.row_stride;
    fill_scale(&a->w_scales, &p->ws);
    fill_scale(&a->x_scales, &p->xs);
    p->m = a->m;
    p->n = a->n;
    p->k = a->k;
    p->y_dtype = (fp8k_u32)a->y.dtype;
    if (a->bias.buffer) {
        p->b_off = a->bias.offset;
        p->b_dtype = (fp8k_u32)a->bias.dtype;
    }
    if (p->w_off % 16 == 0 && p->w_stride % 16 == 0) p->flags |= FP8K_W_ALIGNED;
    if (p->x_off % 16 == 0 && p->x_stride % 16 == 0) p->flags |= FP8K_X_ALIGNED;
}

/* The six buffers and the parameter block; absent optional buffers are replaced by W (never read then). */
static fp8_status set_args(fp8_device *dev, cl_kernel k, const fp8i_gemm_args *a, const fp8k_gemm_params *p)
{
    const cl_mem w = fp8i_cl_mem(a->w.buffer);
    const cl_mem bufs[6] = {w, fp8i_cl_mem(a->x.buffer), fp8i_cl_mem(a->y.buffer),
                            a->w_scales.buffer ? fp8i_cl_mem(a->w_scales.buffer) : w,
                            a->x_scales.buffer ? fp8i_cl_mem(a->x_scales.buffer) : w,
                            a->bias.buffer ? fp8i_cl_mem(a->bias.buffer) : w};
    cl_int err = CL_SUCCESS;
    for (cl_uint i = 0; i < 6 && err == CL_SUCCESS; i++) err = clSetKernelArg(k, i, sizeof(cl_mem), &bufs[i]);
    if (err == CL_SUCCESS) err = clSetKernelArg(k, 6, sizeof *p, p);
    return err == CL_SUCCESS ? FP8_OK : fp8i_cl_status(dev->ctx, err, "clSetKernelArg (gemm)");
}

static uint32_t gemv_rows_per_launch(uint32_t m)
{
    return m <= 1 ? 1 : m <= 2 ? 2 : m <= 4 ? 4 : m <= 8 ? 8 : 16;
}

static size_t round_up(size_t v, size_t to) { return (v + to - 1) / to * to; }

fp8_status fp8i_cl_gemm_fused(fp8_device *dev, const fp8i_gemm_args *a, bool gemv)
{
    fp8i_cl_device *d = fp8i_cl_dev(dev);
    fp8k_gemm_params p;
    fill_params(a, &p);
    char defines[160];
    cl_kernel k;
    fp8_status st;
    if (gemv) {
        const uint32_t mt = gemv_rows_per_launch(a->m);
        /* Weight rows per work-item: more rows share each activation load, fewer keep more groups in flight. */
        const uint32_t r = d->gemv_r ? d->gemv_r : mt == 1 ? 2 : 4;
        const uint32_t rpw = d->gemv_rpw ? d->gemv_rpw : GEMV_RPW;
        snprintf(defines, sizeof defines, "-DWDT=%d -DXDT=%d -DMT=%u -DGEMV_R=%u -DGEMV_RPW=%u", (int)a->w.dtype,
                 (int)a->x.dtype, mt, r, rpw);
        if ((st = fp8i_cl_kernel(dev, FP8I_CL_PROG_GEMV, defines, "fp8_gemv", &k)) != FP8_OK) return st;
        if ((st = set_args(dev, k, a, &p)) != FP8_OK) return st;
        const size_t local[2] = {GEMV_G * rpw, 1};
        const size_t global[2] = {round_up(a->n, rpw * r) / (rpw * r) * local[0], round_up(a->m, mt) / mt};
        return fp8i_cl_launch(dev, k, 2, global, local);
    }
    const fp8i_cl_tiles t = d->tiles;
    snprintf(defines, sizeof defines, "-DWDT=%d -DXDT=%d -DBM=%u -DBN=%u -DBK=%u -DTM=%u -DTN=%u", (int)a->w.dtype,
             (int)a->x.dtype, t.bm, t.bn, t.bk, t.tm, t.tn);
    if ((st = fp8i_cl_kernel(dev, FP8I_CL_PROG_GEMM, defines, "fp8_gemm_tiled", &k)) != FP8_OK) return st;
    if ((st = set_args(dev, k, a, &p)) != FP8_OK) return st;
    const size_t local[2] = {t.bn / t.tn, t.bm / t.tm};
    const size_t global[2] = {round_up(a->n, t.bn) / t.bn * local[0], round_up(a->m, t.bm) / t.bm * local[1]};
    return fp8i_cl_launch(dev, k, 2, global, local);
}

bool fp8i_cl_supports_path(const fp8_device *dev, fp8_path path, const fp8i_gemm_args *a)
{
    if (a->m > MAX_DIM || a->n > MAX_DIM || a->k > MAX_DIM) return false;
    switch (path) {
    case FP8_PATH_CL_GEMV:
    case FP8_PATH_CL_GEMM_TILED: return true; /* every dtype, scale layout, stride and offset the front door accepts */
    case FP8_PATH_CL_CLBLAST:
#ifdef FP8_HAVE_CLBLAST
        return fp8i_cl_clblast_supports(dev, a);
#else
        (void)dev;
        return false;
#endif
    default: return false;
    }
}

fp8_status fp8i_cl_gemm(fp8_device *dev, const fp8i_gemm_args *a)
{
    switch (a->path) {
    case FP8_PATH_CL_GEMV: return fp8i_cl_gemm_fused(dev, a, true);
    case FP8_PATH_CL_GEMM_TILED: return fp8i_cl_gemm_fused(dev, a, false);
#ifdef FP8_HAVE_CLBLAST
    case FP8_PATH_CL_CLBLAST: return fp8i_cl_clblast_gemm(dev, a);
#endif
    default:
        return FP8I_FAIL(dev->ctx, FP8_ERR_UNSUPPORTED, "opencl: path %s is not an OpenCL path", fp8_path_name(a->path));
    }
}
