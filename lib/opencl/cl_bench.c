/* Reference kernels for benchmarks: fp32 SGEMM (CLBlast where built, else the fused kernels reading fp32
 * weights) and an fp32 FMA peak loop in registers (OpenCL reaches no matrix unit, so this is the FMA peak). */
#include "cl_internal.h"

/* Chain steps per work-item of fp8_fma_peak, and its FLOPs per step: 8 float4 FMAs. */
#define PEAK_ITERS 8192u
#define PEAK_FLOP_PER_ITER (8.0 * 4.0 * 2.0)

static fp8_status fma_peak(fp8_device *dev, const fp8_bench_desc *desc, double *flop)
{
    if (desc->m != 0) return FP8I_FAIL(dev->ctx, FP8_ERR_INVALID_ARGUMENT, "opencl: no matrix peak kernel %u (only 0)", desc->m);
    cl_kernel k;
    fp8_status st = fp8i_cl_kernel(dev, FP8I_CL_PROG_UTIL, "", "fp8_fma_peak", &k);
    if (st != FP8_OK) return st;
    const fp8_device_info *info = &dev->entry->info;
    const size_t local = 256 <= fp8i_cl_dev(dev)->max_wg ? 256 : fp8i_cl_dev(dev)->max_wg;
    size_t items = desc->repeat ? desc->repeat : (size_t)(info->compute_units ? info->compute_units : 1) * 4096;
    items = (items + local - 1) / local * local;
    const cl_mem sink = fp8i_cl_mem(desc->c);
    const cl_uint iters = PEAK_ITERS;
    const float a = 0.999f, b = 1e-3f;
    cl_int err = clSetKernelArg(k, 0, sizeof sink, &sink);
    err |= clSetKernelArg(k, 1, sizeof iters, &iters);
    err |= clSetKernelArg(k, 2, sizeof a, &a);
    err |= clSetKernelArg(k, 3, sizeof b, &b);
    if (err != CL_SUCCESS) return FP8I_FAIL(dev->ctx, FP8_ERR_BACKEND, "opencl: setting FMA peak arguments failed");
    *flop = (double)items * PEAK_ITERS * PEAK_FLOP_PER_ITER;
    return fp8i_cl_launch(dev, k, 1, &items, &local);
}

fp8_status fp8i_cl_sgemm_fused(fp8_device *dev, const fp8_bench_desc *d)
{
    fp8i_gemm_args a = {.m = d->m, .n = d->n, .k = d->k};
    a.w = (fp8i_matrix){d->b, 0, FP8_F32, d->k};
    a.x = (fp8i_matrix){d->a, 0, FP8_F32, d->k};
    a.y = (fp8i_matrix){d->c, 0, FP8_F32, d->n};
    const fp8i_scales none = {.block_rows = d->n, .block_cols = d->k, .blocks_per_row = 1, .block_row_count = 1,
                              .tensor_scale = 1.0f};
    a.w_scales = none;
    a.x_scales = none;
    a.x_scales.block_rows = d->m;
    return fp8i_cl_gemm_fused(dev, &a, d->m <= 16);
}

fp8_status fp8i_cl_bench_run(fp8_device *dev, const fp8_bench_desc *desc, double *flop)
{
    switch (desc->kernel) {
    case FP8_BENCH_MATRIX_PEAK_F16: return fma_peak(dev, desc, flop);
    case FP8_BENCH_SGEMM_F32:
        *flop = 2.0 * desc->m * desc->n * desc->k;
#ifdef FP8_HAVE_CLBLAST
        return fp8i_cl_clblast_sgemm(dev, desc->m, desc->n, desc->k, fp8i_cl_mem(desc->a), fp8i_cl_mem(desc->b),
                                     fp8i_cl_mem(desc->c));
#else
        return fp8i_cl_sgemm_fused(dev, desc);
#endif
    default: return FP8I_FAIL(dev->ctx, FP8_ERR_UNSUPPORTED, "opencl: no benchmark kernel %d", (int)desc->kernel);
    }
}
