/* Reference kernels for benchmarks: the fp16 matrix peak (cooperative matrices in registers, or fp32 FMA
 * chains without them), the fp32 SGEMM baseline (the tiled GEMM kernel specialized for f32 weights) and the
 * copy bandwidth (a streaming 16-byte copy kernel). */
#include "vk_internal.h"

typedef struct peak_push {
    uint32_t iters, sink;
    float a, b;
} peak_push;

/* The push block of gemm_common.glsl, for the SGEMM specialization (f32: offsets and strides in elements). */
typedef struct sgemm_push {
    uint32_t m, n, k;
    uint32_t w_off, w_stride, ws_off, ws_bpr, ws_br, ws_bc;
    float w_ts;
    uint32_t x_off, x_stride, xs_off, xs_bpr, xs_br, xs_bc;
    float x_ts;
    uint32_t y_off, y_stride, b_off;
} sgemm_push;

#define PEAK_ITERS 512u
#define PEAK_DEFAULT_GROUPS 4096u

static fp8_status run_peak(fp8_device *dev, const fp8_bench_desc *d, double *flop)
{
    fp8i_vk_device *vd = fp8i_vk_dev(dev);
    fp8i_vk_shader shader = FP8I_VK_SHADER_PEAK_FMA;
    uint32_t wg = 256;
    if (vd->feat.fp16 && vd->feat.memory_model) {
        if (vd->feat.nv_coopmat_f16_16x16x16 && fp8i_vk_shader_code(FP8I_VK_SHADER_PEAK_NV_COOPMAT)->code)
            shader = FP8I_VK_SHADER_PEAK_NV_COOPMAT, wg = 128;
        else if (vd->feat.khr_coopmat_f16_16x16x16 && fp8i_vk_shader_code(FP8I_VK_SHADER_PEAK_KHR_COOPMAT)->code)
            shader = FP8I_VK_SHADER_PEAK_KHR_COOPMAT, wg = 128;
    }
    const uint32_t groups = d->repeat ? d->repeat : PEAK_DEFAULT_GROUPS;
    if (groups > vd->props.limits.maxComputeWorkGroupCount[0])
        return FP8I_FAIL(dev->ctx, FP8_ERR_TOO_LARGE, "vulkan: %u peak workgroups exceed the grid limit", groups);
    if (d->c->size < 16 * 16 * 4 && shader != FP8I_VK_SHADER_PEAK_FMA)
        return FP8I_FAIL(dev->ctx, FP8_ERR_BUFFER_TOO_SMALL, "vulkan: the peak kernel's sink needs 1 KiB");
    if (d->c->size < 256 * 4 && shader == FP8I_VK_SHADER_PEAK_FMA)
        return FP8I_FAIL(dev->ctx, FP8_ERR_BUFFER_TOO_SMALL, "vulkan: the peak kernel's sink needs 1 KiB");
    VkPipeline pipeline;
    fp8_status st = fp8i_vk_pipeline_get(vd, shader, NULL, 0, 0, &pipeline);
    if (st != FP8_OK) return st;
    peak_push p = {PEAK_ITERS, 0, 1.0f / 64.0f, 0.5f};
    fp8_buffer *b[FP8I_VK_BINDINGS] = {0};
    b[FP8I_VK_BIND_Y] = d->c;
    st = fp8i_vk_dispatch(vd, pipeline, b, 1u << FP8I_VK_BIND_Y, &p, sizeof p, groups, 1, 1);
    if (st != FP8_OK) return st;
    if (shader == FP8I_VK_SHADER_PEAK_FMA) {
        *flop = (double)groups * wg * PEAK_ITERS * 8.0 * 2.0;
    } else {
        const uint32_t sg = vd->feat.subgroup_size ? vd->feat.subgroup_size : 32;
        *flop = (double)groups * (wg / sg) * PEAK_ITERS * 8.0 * 2.0 * 16 * 16 * 16;
    }
    return FP8_OK;
}

static fp8_status run_sgemm(fp8_device *dev, const fp8_bench_desc *d, double *flop)
{
    fp8i_vk_device *vd = fp8i_vk_dev(dev);
    if ((uint64_t)d->m * d->k > UINT32_MAX || (uint64_t)d->n * d->k > UINT32_MAX || (uint64_t)d->m * d->n > UINT32_MAX)
        return FP8I_FAIL(dev->ctx, FP8_ERR_TOO_LARGE, "vulkan: SGEMM operands past 32-bit indexing");
    /* 128x128 blocks (8x8 per thread), K slices of 8: the usual shape of a register-blocked SGEMM. */
    const uint32_t spec[13] = {256, FP8_F32, FP8_F32, FP8_F32, 0, 0, 0, 0, 0, 0, 8, 8, 8};
    const uint32_t gx = d->n / 128 + (d->n % 128 != 0), gy = d->m / 128 + (d->m % 128 != 0);
    if (gx > vd->props.limits.maxComputeWorkGroupCount[0] || gy > vd->props.limits.maxComputeWorkGroupCount[1])
        return FP8I_FAIL(dev->ctx, FP8_ERR_TOO_LARGE, "vulkan: SGEMM grid too large");
    VkPipeline pipeline;
    fp8_status st = fp8i_vk_pipeline_get(vd, FP8I_VK_SHADER_GEMM_TILED, spec, 13, 0, &pipeline);
    if (st != FP8_OK) return st;
    sgemm_push p = {.m = d->m, .n = d->n, .k = d->k, .w_stride = d->k, .ws_br = 1, .ws_bc = 1, .w_ts = 1.0f,
                    .x_stride = d->k, .xs_br = 1, .xs_bc = 1, .x_ts = 1.0f, .y_stride = d->n};
    fp8_buffer *b[FP8I_VK_BINDINGS] = {0};
    b[FP8I_VK_BIND_W] = d->b;
    b[FP8I_VK_BIND_X] = d->a;
    b[FP8I_VK_BIND_Y] = d->c;
    st = fp8i_vk_dispatch(vd, pipeline, b, 1u << FP8I_VK_BIND_Y, &p, sizeof p, gx, gy, 1);
    if (st == FP8_OK) *flop = 2.0 * d->m * d->n * d->k;
    return st;
}

/* Workgroups of the copy kernel: enough to fill any GPU (each moves 4 KiB per round), within every grid limit. */
#define COPY_MAX_GROUPS 65535u

static fp8_status run_copy(fp8_device *dev, const fp8_bench_desc *d, double *bytes)
{
    fp8i_vk_device *vd = fp8i_vk_dev(dev);
    const uint64_t words = d->a->size / 16;
    if (words > UINT32_MAX) return FP8I_FAIL(dev->ctx, FP8_ERR_TOO_LARGE, "vulkan: copy past 32-bit word indexing");
    uint32_t groups = (uint32_t)((words + 1023) / 1024);
    if (groups > COPY_MAX_GROUPS) groups = COPY_MAX_GROUPS;
    if (groups > vd->props.limits.maxComputeWorkGroupCount[0]) groups = vd->props.limits.maxComputeWorkGroupCount[0];
    if (!groups) groups = 1;
    VkPipeline pipeline;
    fp8_status st = fp8i_vk_pipeline_get(vd, FP8I_VK_SHADER_COPY, NULL, 0, 0, &pipeline);
    if (st != FP8_OK) return st;
    const uint32_t push = (uint32_t)words;
    fp8_buffer *b[FP8I_VK_BINDINGS] = {0};
    b[FP8I_VK_BIND_X] = d->a;
    b[FP8I_VK_BIND_Y] = d->c;
    st = fp8i_vk_dispatch(vd, pipeline, b, 1u << FP8I_VK_BIND_Y, &push, sizeof push, groups, 1, 1);
    if (st == FP8_OK) *bytes = 2.0 * (double)d->a->size;
    return st;
}

fp8_status fp8i_vk_bench_run(fp8_device *dev, const fp8_bench_desc *desc, double *flop)
{
    switch (desc->kernel) {
    case FP8_BENCH_MATRIX_PEAK_F16: return run_peak(dev, desc, flop);
    case FP8_BENCH_SGEMM_F32: return run_sgemm(dev, desc, flop);
    case FP8_BENCH_COPY: return run_copy(dev, desc, flop);
    default: return FP8I_FAIL(dev->ctx, FP8_ERR_UNSUPPORTED, "vulkan: no bench kernel %d", (int)desc->kernel);
    }
}
