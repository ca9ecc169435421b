/* The CLBlast path for large M: dequantize a band of weight rows into bounded fp32 scratch, then CLBlast SGEMM
 * per band. The scratch belongs to the device and never holds a full dequantized copy of a large weight. */
#include "cl_internal.h"

#ifdef FP8_HAVE_CLBLAST

#include <clblast_c.h>

/* Scratch budget per device: activation band + weight band + output band. */
#define SCRATCH_CAP ((size_t)64 << 20)
#define DQ_LOCAL 64u

typedef struct plan {
    bool x_direct, y_direct; /* f32 activations / output used in place */
    uint32_t mb, nb;         /* rows of X and of W per band */
    size_t x_bytes, w_bytes, c_bytes;
} plan;

static bool make_plan(const fp8i_gemm_args *a, plan *p)
{
    *p = (plan){.x_direct = a->x.dtype == FP8_F32, .y_direct = a->y.dtype == FP8_F32};
    const size_t row = (size_t)a->k * sizeof(float);
    p->mb = a->m;
    if (!p->x_direct) {
        const size_t fit = SCRATCH_CAP / 2 / row;
        if (fit == 0) return false;
        if (fit < p->mb) p->mb = (uint32_t)fit;
    }
    /* An output band of mb rows must leave room for at least 64 weight rows. */
    if (!p->y_direct && (size_t)p->mb * 64 * sizeof(float) > SCRATCH_CAP / 4)
        p->mb = (uint32_t)(SCRATCH_CAP / 4 / (64 * sizeof(float)));
    p->x_bytes = p->x_direct ? 0 : (size_t)p->mb * row;
    const size_t per_n = row + (p->y_direct ? 0 : (size_t)p->mb * sizeof(float));
    size_t nb = (SCRATCH_CAP - p->x_bytes) / per_n;
    if (nb == 0) return false;
    if (nb > a->n) nb = a->n;
    if (nb >= 64) nb -= nb % 64;
    p->nb = (uint32_t)nb;
    p->w_bytes = (size_t)p->nb * row;
    p->c_bytes = p->y_direct ? 0 : (size_t)p->mb * p->nb * sizeof(float);
    return true;
}

bool fp8i_cl_clblast_supports(const fp8_device *dev, const fp8i_gemm_args *a)
{
    plan p;
    return make_plan(a, &p) && p.x_bytes + p.w_bytes + p.c_bytes <= fp8i_cl_dev(dev)->max_alloc;
}

static fp8_status blast_status(fp8_device *dev, CLBlastStatusCode s, const char *what)
{
    if (s == CLBlastSuccess) return FP8_OK;
    if (s > -1000) return fp8i_cl_status(dev->ctx, (cl_int)s, what); /* the OpenCL codes */
    return FP8I_FAIL(dev->ctx, s == CLBlastInsufficientMemoryTemp ? FP8_ERR_OUT_OF_DEVICE_MEMORY : FP8_ERR_BACKEND,
                     "%s: CLBlast status %d", what, (int)s);
}

static fp8_status ensure_scratch(fp8_device *dev, size_t bytes)
{
    fp8i_cl_device *d = fp8i_cl_dev(dev);
    if (d->scratch_size >= bytes) return FP8_OK;
    if (d->scratch) clReleaseMemObject(d->scratch); /* deferred by OpenCL until queued users finish */
    d->scratch = NULL;
    d->scratch_size = 0;
    fp8_status st = fp8i_cl_alloc(dev, bytes, &d->scratch);
    if (st == FP8_OK) d->scratch_size = bytes;
    return st;
}

static void scale_params(const fp8i_scales *s, fp8k_scale *out)
{
    fp8i_cl_fill_scale(s, out);
    out->mode = s->block_cols % 16 == 0 || s->blocks_per_row <= 1 ? FP8K_SCALE_K16 : FP8K_SCALE_GENERIC;
}

/* rows [r0, r0 + rows) of a scaled matrix -> f32 rows of K elements at byte `dst_off` of the scratch. */
static fp8_status dequant(fp8_device *dev, const fp8i_matrix *m, const fp8i_scales *s, uint32_t r0, uint32_t rows,
                          uint32_t cols, size_t dst_off)
{
    fp8i_cl_device *d = fp8i_cl_dev(dev);
    cl_kernel k;
    fp8_status st = fp8i_cl_kernel(dev, FP8I_CL_PROG_UTIL, "", "fp8_dequant_band", &k);
    if (st != FP8_OK) return st;
    size_t stride = 0;
    fp8_dtype_storage_size(m->dtype, m->row_stride, &stride);
    const cl_mem src = fp8i_cl_mem(m->buffer);
    const cl_mem sbuf = s->buffer ? fp8i_cl_mem(s->buffer) : src;
    const cl_ulong src_off = m->offset, src_stride = stride, doff = dst_off, dld = cols;
    const cl_uint dt = (cl_uint)m->dtype, f16 = 0;
    fp8k_scale sc;
    scale_params(s, &sc);
    cl_int err = CL_SUCCESS;
    err |= clSetKernelArg(k, 0, sizeof src, &src);
    err |= clSetKernelArg(k, 1, sizeof src_off, &src_off);
    err |= clSetKernelArg(k, 2, sizeof src_stride, &src_stride);
    err |= clSetKernelArg(k, 3, sizeof dt, &dt);
    err |= clSetKernelArg(k, 4, sizeof r0, &r0);
    err |= clSetKernelArg(k, 5, sizeof rows, &rows);
    err |= clSetKernelArg(k, 6, sizeof cols, &cols);
    err |= clSetKernelArg(k, 7, sizeof sbuf, &sbuf);
    err |= clSetKernelArg(k, 8, sizeof sc, &sc);
    err |= clSetKernelArg(k, 9, sizeof d->scratch, &d->scratch);
    err |= clSetKernelArg(k, 10, sizeof doff, &doff);
    err |= clSetKernelArg(k, 11, sizeof dld, &dld);
    err |= clSetKernelArg(k, 12, sizeof f16, &f16);
    if (err != CL_SUCCESS) return FP8I_FAIL(dev->ctx, FP8_ERR_BACKEND, "opencl: setting dequantize arguments failed");
    const size_t runs = (cols + 15) / 16;
    const size_t local[2] = {DQ_LOCAL, 1};
    const size_t global[2] = {(runs + DQ_LOCAL - 1) / DQ_LOCAL * DQ_LOCAL, rows};
    return fp8i_cl_launch(dev, k, 2, global, local);
}

/* y[m0 + i, n0 + j] = C[c_off + i * ldc + j] (+ bias) in y's dtype; C is the scratch band or y itself. */
static fp8_status epilogue(fp8_device *dev, const fp8i_gemm_args *a, cl_mem c, size_t c_off, size_t ldc, uint32_t m0,
                           uint32_t rows, uint32_t n0, uint32_t cols)
{
    cl_kernel k;
    fp8_status st = fp8i_cl_kernel(dev, FP8I_CL_PROG_UTIL, "", "fp8_epilogue_band", &k);
    if (st != FP8_OK) return st;
    const cl_mem y = fp8i_cl_mem(a->y.buffer);
    const cl_mem b = a->bias.buffer ? fp8i_cl_mem(a->bias.buffer) : y;
    size_t esize = 0;
    fp8_dtype_storage_size(a->y.dtype, 1, &esize);
    const cl_ulong coff = c_off, cld = ldc, yoff = a->y.offset + (size_t)m0 * a->y.row_stride * esize;
    const cl_ulong ystride = a->y.row_stride, boff = a->bias.buffer ? a->bias.offset : 0;
    const cl_uint ydt = (cl_uint)a->y.dtype, bdt = a->bias.buffer ? (cl_uint)a->bias.dtype : 0;
    cl_int err = CL_SUCCESS;
    err |= clSetKernelArg(k, 0, sizeof c, &c);
    err |= clSetKernelArg(k, 1, sizeof coff, &coff);
    err |= clSetKernelArg(k, 2, sizeof cld, &cld);
    err |= clSetKernelArg(k, 3, sizeof rows, &rows);
    err |= clSetKernelArg(k, 4, sizeof cols, &cols);
    err |= clSetKernelArg(k, 5, sizeof n0, &n0);
    err |= clSetKernelArg(k, 6, sizeof y, &y);
    err |= clSetKernelArg(k, 7, sizeof yoff, &yoff);
    err |= clSetKernelArg(k, 8, sizeof ystride, &ystride);
    err |= clSetKernelArg(k, 9, sizeof ydt, &ydt);
    err |= clSetKernelArg(k, 10, sizeof b, &b);
    err |= clSetKernelArg(k, 11, sizeof boff, &boff);
    err |= clSetKernelArg(k, 12, sizeof bdt, &bdt);
    if (err != CL_SUCCESS) return FP8I_FAIL(dev->ctx, FP8_ERR_BACKEND, "opencl: setting epilogue arguments failed");
    const size_t local[2] = {64, 1};
    const size_t global[2] = {(cols + 63u) / 64u * 64u, rows};
    return fp8i_cl_launch(dev, k, 2, global, local);
}

static fp8_status sgemm(fp8_device *dev, size_t m, size_t n, size_t k, cl_mem a, size_t a_off, size_t lda, cl_mem b,
                        size_t b_off, size_t ldb, cl_mem c, size_t c_off, size_t ldc)
{
    fp8i_cl_device *d = fp8i_cl_dev(dev);
    /* CLBlast's event is the one of its last kernel (it may run several): a marker in front opens a timed region
     * that includes all of them. */
    if (d->timing && !d->ev_first && clEnqueueMarkerWithWaitList(d->queue, 0, NULL, &d->ev_new) == CL_SUCCESS)
        fp8i_cl_ev_commit(d);
    CLBlastStatusCode s = CLBlastSgemm(CLBlastLayoutRowMajor, CLBlastTransposeNo, CLBlastTransposeYes, m, n, k, 1.0f, a,
                                       a_off, lda, b, b_off, ldb, 0.0f, c, c_off, ldc, &d->queue, fp8i_cl_ev(d));
    if (s != CLBlastSuccess) return blast_status(dev, s, "CLBlastSgemm");
    fp8i_cl_ev_commit(d);
    return FP8_OK;
}

fp8_status fp8i_cl_clblast_sgemm(fp8_device *dev, uint32_t m, uint32_t n, uint32_t k, cl_mem a, cl_mem b, cl_mem c)
{
    return sgemm(dev, m, n, k, a, 0, k, b, 0, k, c, 0, n);
}

fp8_status fp8i_cl_clblast_gemm(fp8_device *dev, const fp8i_gemm_args *a)
{
    fp8i_cl_device *d = fp8i_cl_dev(dev);
    plan p;
    if (!make_plan(a, &p)) return FP8I_FAIL(dev->ctx, FP8_ERR_UNSUPPORTED, "opencl: K=%u too large for the CLBlast scratch", a->k);
    fp8_status st = ensure_scratch(dev, p.x_bytes + p.w_bytes + p.c_bytes);
    if (st != FP8_OK) return st;
    const size_t w_at = p.x_bytes, c_at = p.x_bytes + p.w_bytes; /* byte offsets in the scratch */
    const cl_mem y = fp8i_cl_mem(a->y.buffer);
    for (uint32_t m0 = 0; m0 < a->m; m0 += p.mb) {
        const uint32_t mb = a->m - m0 < p.mb ? a->m - m0 : p.mb;
        cl_mem xa = fp8i_cl_mem(a->x.buffer);
        size_t x_off = a->x.offset / sizeof(float) + (size_t)m0 * a->x.row_stride, ldx = a->x.row_stride;
        if (!p.x_direct) {
            if ((st = dequant(dev, &a->x, &a->x_scales, m0, mb, a->k, 0)) != FP8_OK) return st;
            xa = d->scratch;
            x_off = 0;
            ldx = a->k;
        }
        for (uint32_t n0 = 0; n0 < a->n; n0 += p.nb) {
            const uint32_t nb = a->n - n0 < p.nb ? a->n - n0 : p.nb;
            if ((st = dequant(dev, &a->w, &a->w_scales, n0, nb, a->k, w_at)) != FP8_OK) return st;
            if (p.y_direct) {
                const size_t y_off = a->y.offset / sizeof(float) + (size_t)m0 * a->y.row_stride + n0;
                st = sgemm(dev, mb, nb, a->k, xa, x_off, ldx, d->scratch, w_at / sizeof(float), a->k, y, y_off,
                           a->y.row_stride);
                if (st == FP8_OK && a->bias.buffer) st = epilogue(dev, a, y, y_off, a->y.row_stride, m0, mb, n0, nb);
            } else {
                st = sgemm(dev, mb, nb, a->k, xa, x_off, ldx, d->scratch, w_at / sizeof(float), a->k, d->scratch,
                           c_at / sizeof(float), nb);
                if (st == FP8_OK) st = epilogue(dev, a, d->scratch, c_at / sizeof(float), nb, m0, mb, n0, nb);
            }
            if (st != FP8_OK) return st;
        }
    }
    return FP8_OK;
}

#endif
