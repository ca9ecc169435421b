/* Reference kernels for benchmarks: the fp16 matrix peak (cooperative matrices in registers, or fp32 FMA
 * chains without them), the fp32 SGEMM baseline (the tiled GEMM kernel specialized for f32 weights) and the
 * copy bandwidth (a streaming 16-byte copy kernel). */
#include "vk_internal.h"
#include "../device/device.h"

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

/* One of the peak kernels (desc->m, see fp8_bench_desc): the shader and the operations of one workgroup per
 * iteration. */
typedef struct peak_kernel {
    fp8i_vk_shader shader;
    double flop_per_iter;
} peak_kernel;

static bool have_shader(fp8i_vk_shader s) { return fp8i_vk_shader_code(s)->code != NULL; }

static fp8_status peak_kernel_for(fp8_device *dev, uint32_t variant, peak_kernel *k)
{
    const fp8i_vk_device *vd = fp8i_vk_dev(dev);
    const bool mm = vd->feat.fp16 && vd->feat.memory_model;
    const bool nv = mm && vd->feat.nv_coopmat_f16_16x16x16 && have_shader(FP8I_VK_SHADER_PEAK_NV_COOPMAT);
    const bool khr = mm && vd->feat.khr_coopmat_f16_16x16x16 && have_shader(FP8I_VK_SHADER_PEAK_KHR_COOPMAT);
    /* peak_coopmat2.comp: 128x128x32 at workgroup scope, 256 invocations, where the device lists such a shape. */
    const fp8_matrix_shape *s = fp8i_coopmat2_shape(&dev->entry->info);
    const bool cm2 = vd->feat.nv_coopmat2 && have_shader(FP8I_VK_SHADER_PEAK_NV_COOPMAT2) && s &&
                     s->workgroup_invocations == 256 && s->m && s->n && s->k && 128 % s->m == 0 && 128 % s->n == 0 &&
                     32 % s->k == 0;
    const uint32_t sg = vd->feat.subgroup_size ? vd->feat.subgroup_size : 32;
    /* peak_coopmat.comp: 8 accumulators of 16x16 per subgroup, 128 invocations. */
    const double subgroup_flop = (double)(128 / sg) * 8.0 * 2.0 * 16 * 16 * 16;
    switch (variant) {
    case 0:
        if (nv) *k = (peak_kernel){FP8I_VK_SHADER_PEAK_NV_COOPMAT, subgroup_flop};
        else if (khr) *k = (peak_kernel){FP8I_VK_SHADER_PEAK_KHR_COOPMAT, subgroup_flop};
        else *k = (peak_kernel){FP8I_VK_SHADER_PEAK_FMA, 256.0 * 8.0 * 2.0}; /* 256 invocations, 8 FMA chains */
        return FP8_OK;
    case 1:
        if (!khr) break;
        *k = (peak_kernel){FP8I_VK_SHADER_PEAK_KHR_COOPMAT, subgroup_flop};
        return FP8_OK;
    case 2:
        if (!cm2) break;
        *k = (peak_kernel){FP8I_VK_SHADER_PEAK_NV_COOPMAT2, 128.0 * 128.0 * 32.0 * 2.0};
        return FP8_OK;
    default:
        return FP8I_FAIL(dev->ctx, FP8_ERR_INVALID_ARGUMENT, "vulkan: no matrix peak kernel %u (0 to 2)", variant);
    }
    FP8I_DEBUG(dev->ctx, "vulkan: matrix peak kernel %u: not in this build or not on %s", variant, vd->props.deviceName);
    return FP8_ERR_UNSUPPORTED;
}

static fp8_status run_peak(fp8_device *dev, const fp8_bench_desc *d, double *flop)
{
    fp8i_vk_device *vd = fp8i_vk_dev(dev);
    peak_kernel k = {FP8I_VK_SHADER_PEAK_FMA, 0};
    fp8_status st = peak_kernel_for(dev, d->m, &k);
    if (st != FP8_OK) return st;
    const uint32_t groups = d->repeat ? d->repeat : PEAK_DEFAULT_GROUPS;
    if (groups > vd->props.limits.maxComputeWorkGroupCount[0])
        return FP8I_FAIL(dev->ctx, FP8_ERR_TOO_LARGE, "vulkan: %u peak workgroups exceed the grid limit", groups);
    if (d->c->size < 1024) return FP8I_FAIL(dev->ctx, FP8_ERR_BUFFER_TOO_SMALL, "vulkan: the peak kernel's sink needs 1 KiB");
    VkPipeline pipeline;
    if ((st = fp8i_vk_pipeline_get(vd, k.shader, NULL, 0, 0, &pipeline)) != FP8_OK) return st;
    peak_push p = {PEAK_ITERS, 0, 1.0f / 64.0f, 0.5f};
    fp8_buffer *b[FP8I_VK_BINDINGS] = {0};
    b[FP8I_VK_BIND_Y] = d->c;
    st = fp8i_vk_dispatch(vd, pipeline, b, 1u << FP8I_VK_BIND_Y, &p, sizeof p, groups, 1, 1);
    if (st == FP8_OK) *flop = (double)groups * PEAK_ITERS * k.flop_per_iter;
    return st;
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
