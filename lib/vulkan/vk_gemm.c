/* GEMM and GEMV on Vulkan: which kernel runs which arguments, their specialization, push constants, dispatch. */
#include "vk_internal.h"

#include "../device/device.h"
#include "../device/quirks.h"
#include "../format/format.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The push constant block of shaders/gemm_common.glsl, word for word. */
typedef struct gemm_push {
    uint32_t m, n, k;
    uint32_t w_off, w_stride;
    uint32_t ws_off, ws_bpr, ws_br, ws_bc;
    float w_ts;
    uint32_t x_off, x_stride;
    uint32_t xs_off, xs_bpr, xs_br, xs_bc;
    float x_ts;
    uint32_t y_off, y_stride;
    uint32_t b_off;
} gemm_push;

/* Scale modes of gemm_common.glsl. */
enum { SM_NONE = 0, SM_ROW = 1, SM_CHUNK = 2, SM_ELEM = 3 };

/* Specialization constant ids shared by the GEMM shaders (gemm_common.glsl); 10.. are per shader. */
enum {
    SPEC_WG = 0, SPEC_WDT, SPEC_XDT, SPEC_YDT, SPEC_BDT, SPEC_WS_DT, SPEC_WS_MODE, SPEC_XS_DT, SPEC_XS_MODE, SPEC_EXACT,
    SPEC_COMMON_
};

/* The tiled kernel: a 16x16 thread grid with T x T outputs per thread (T = 4 or 8). */
#define TILED_WG 256u

/* Cooperative-matrix tile: subgroups along M and N, 16x16 tiles per subgroup along M and N, K per slice, the
 * shared-memory slice buffers (2: one barrier per slice; 1: half the memory, two barriers), and the extra
 * subgroups that only load and decode (0: the multiplying subgroups do it; else two buffers are needed). */
typedef struct coop_tile { uint32_t sg_m, sg_n, fm, fn, bk, stages, producers; } coop_tile;
/* 128 x 128 per workgroup of 256, 64 x 32 per subgroup; its K slices from fp8i_vk_coop_slice. */
#define COOP_DEFAULT {2, 4, 4, 2, 0, 0, 0}
/* With direct weights: 128 x 256 per workgroup of 256, 128 x 32 per subgroup, 64-deep slices through two buffers
 * where they fit. One subgroup row decodes each weight once per 128 tokens, as the default tile does; on the H100
 * (run 146) it took E4M3 per-channel GEMMs at M = 4096 from 171-173 to 190-191 TFLOP/s, where 64 x 256
 * (1,8,4,2) ran at 146-148, 256 x 128 (2,4,8,2, two subgroup rows) at 142-145, and 128x128 block scales lost
 * at every tile (96-127 against 149-151: their rescaling pushed the kernel to 255 registers). */
#define COOP_DIRECT {1, 8, 8, 2, 64, 2, 0}
#define COOP_GROUP_M 8u               /* block rows per band of the workgroup order (shaders/gemm_coopmat.comp) */

static uint32_t scale_mode(const fp8i_scales *s, uint32_t k)
{
    if (s->dtype == FP8_DTYPE_INVALID) return SM_NONE;
    if (s->block_cols >= k) return SM_ROW;
    if (s->block_cols % 16 == 0) return SM_CHUNK;
    return SM_ELEM;
}

static uint32_t elem_bytes(fp8_dtype dt) { return dt == FP8_E2M1 ? 1 : fp8_dtype_bits(dt) / 8; }

/* Bytes from one weight row to the next (E2M1 row strides count elements, two per byte). */
static uint32_t w_row_bytes(const fp8i_gemm_args *a)
{
    return (uint32_t)(a->w.dtype == FP8_E2M1 ? a->w.row_stride / 2 : a->w.row_stride);
}

static void fill_push(const fp8i_gemm_args *a, gemm_push *p)
{
    *p = (gemm_push){.m = a->m, .n = a->n, .k = a->k};
    p->w_off = (uint32_t)a->w.offset;
    p->w_stride = w_row_bytes(a);
    const fp8i_scales *ws = &a->w_scales, *xs = &a->x_scales;
    if (ws->dtype != FP8_DTYPE_INVALID) {
        p->ws_off = (uint32_t)(ws->offset / elem_bytes(ws->dtype));
        p->ws_bpr = ws->blocks_per_row;
        p->ws_br = ws->block_rows;
        p->ws_bc = ws->block_cols;
    } else {
        p->ws_br = p->ws_bc = 1;
    }
    p->w_ts = ws->tensor_scale;
    p->x_off = (uint32_t)(a->x.offset / elem_bytes(a->x.dtype));
    p->x_stride = (uint32_t)a->x.row_stride;
    if (xs->dtype != FP8_DTYPE_INVALID) {
        p->xs_off = (uint32_t)(xs->offset / elem_bytes(xs->dtype));
        p->xs_bpr = xs->blocks_per_row;
        p->xs_br = xs->block_rows;
        p->xs_bc = xs->block_cols;
    } else {
        p->xs_br = p->xs_bc = 1;
    }
    p->x_ts = xs->tensor_scale;
    p->y_off = (uint32_t)(a->y.offset / elem_bytes(a->y.dtype));
    p->y_stride = (uint32_t)a->y.row_stride;
    p->b_off = a->bias.buffer ? (uint32_t)(a->bias.offset / elem_bytes(a->bias.dtype)) : 0;
}

/* Decode with scalar arithmetic only: devices whose f16 conversions failed the check at open, or on request. */
static bool exact_decode(const fp8_device *dev)
{
    return !fp8i_vk_dev(dev)->fast_decode || (dev->entry->verdict.quirks & FP8I_QUIRK_NO_FP16_DENORMALS) ||
           fp8i_env_flag("FP8_VK_EXACT_DECODE");
}

static uint32_t div_up(uint32_t a, uint32_t b) { return a / b + (a % b != 0); }

static uint32_t coop_bm(const coop_tile *t) { return t->sg_m * t->fm * 16; }
static uint32_t coop_bn(const coop_tile *t) { return t->sg_n * t->fn * 16; }
static uint32_t coop_threads(const coop_tile *t) { return (t->sg_m * t->sg_n + t->producers) * 32; }

uint64_t fp8i_vk_coop_shared_bytes(uint32_t bm, uint32_t bn, uint32_t bk, uint32_t stages, uint32_t subgroups,
                                   bool emulated)
{
    /* `stages` slices of X and W, rows padded by one uvec4, and (matrix units only) a 16x16 fp32 staging tile
     * per subgroup. */
    const uint64_t slices = (uint64_t)stages * (bm + bn) * (bk / 8 + 1) * 16;
    return slices + (emulated ? 0 : (uint64_t)subgroups * 1024);
}

/* K slices of the cooperative-matrix kernels, best first: 64 deep through one buffer (45 KiB at a 128 x 128
 * tile), then 32 and 16 through two. On the H100 (runs 39-40, M = 4096) the first took the dense GEMM with E4M3
 * 128x128 blocks from 103 to 138 TFLOP/s and MXFP4 from 130 to 159 against the second, and the grouped gate/up
 * GEMM from 74 to 90 (Qwen3-30B-A3B). */
static const uint32_t coop_slices[][2] = {{64, 1}, {32, 2}, {16, 2}};

bool fp8i_vk_coop_slice(const fp8i_vk_device *vd, uint32_t bm, uint32_t bn, uint32_t subgroups, bool emulated,
                        uint32_t *bk, uint32_t *stages)
{
    const size_t count = sizeof coop_slices / sizeof coop_slices[0];
    for (size_t i = 0; i < count; i++)
        if (fp8i_vk_coop_shared_bytes(bm, bn, coop_slices[i][0], coop_slices[i][1], subgroups, emulated) <=
            vd->props.limits.maxComputeSharedMemorySize) {
            *bk = coop_slices[i][0];
            *stages = coop_slices[i][1];
            return true;
        }
    *bk = coop_slices[count - 1][0];
    *stages = coop_slices[count - 1][1];
    return false;
}

/* With direct weights (W_DIRECT) only the activation slices are staged. */
static uint64_t coop_shared_bytes(const coop_tile *t, bool emulated, bool direct)
{
    return fp8i_vk_coop_shared_bytes(coop_bm(t), direct ? 0 : coop_bn(t), t->bk, t->stages, t->sg_m * t->sg_n, emulated);
}

/* Whether the device can run tile t (or its emulation): workgroup size, shared memory, units per thread. */
static bool coop_tile_ok(const fp8i_vk_device *vd, const coop_tile *t, bool emulated, bool direct)
{
    if (t->fm < 1 || t->fm > (direct ? 8u : 4u) || t->fn < 1 || t->fn > 4 || t->sg_m < 1 || t->sg_n < 1 || t->sg_m > 8 || t->sg_n > 8 ||
        (t->bk != 16 && t->bk != 32 && t->bk != 64) || (t->stages != 1 && t->stages != 2) || t->producers > 16 ||
        (t->producers && t->stages != 2))
        return false;
    const uint32_t threads = coop_threads(t), multipliers = t->sg_m * t->sg_n * 32, bm = coop_bm(t), bn = coop_bn(t);
    const uint32_t loaders = t->producers ? t->producers * 32 : multipliers;
    if (threads > vd->props.limits.maxComputeWorkGroupInvocations || threads > vd->props.limits.maxComputeWorkGroupSize[0] ||
        coop_shared_bytes(t, emulated, direct) > vd->props.limits.maxComputeSharedMemorySize)
        return false;
    /* Raw units each loader keeps in flight: 8 activations or 16 weights each, at most 8 of either. */
    if (div_up(bm * t->bk / 8, loaders) > 8 || div_up(bn * t->bk / 16, loaders) > 8) return false;
    return !emulated || bm * bn / multipliers <= 128;
}

/* The tile: FP8_VK_COOPMAT_TILE=sg_m,sg_n,fm,fn[,bk[,stages[,producers]]] (for tuning on a device) when valid
 * there, else the default with the first K slices that fit (the smallest where none do: the caller's checks then
 * refuse it). With direct weights the slices are 64 deep (the kernel's K permutation spans 64), through two
 * buffers where they fit (without the weights' half, 128 tokens' fit in 45 KiB), else one. */
static coop_tile coop_tile_for(const fp8i_vk_device *vd, bool emulated, bool direct)
{
    coop_tile t = COOP_DEFAULT;
    if (direct) {
        t = (coop_tile)COOP_DIRECT;
        if (!coop_tile_ok(vd, &t, emulated, true)) t.stages = 1;
    } else {
        fp8i_vk_coop_slice(vd, coop_bm(&t), coop_bn(&t), t.sg_m * t.sg_n, emulated, &t.bk, &t.stages);
    }
    const char *env = getenv("FP8_VK_COOPMAT_TILE");
    coop_tile e = {.bk = 32, .stages = 2};
    if (env && sscanf(env, "%u,%u,%u,%u,%u,%u,%u", &e.sg_m, &e.sg_n, &e.fm, &e.fn, &e.bk, &e.stages, &e.producers) >= 4) {
        if (coop_tile_ok(vd, &e, emulated, direct)) t = e;
        else FP8I_WARN(vd->ctx, "vulkan: FP8_VK_COOPMAT_TILE=%s does not fit this device; using the default", env);
    }
    return t;
}

/* Whether the weight block scales can be applied on the accumulators (W_ACC_SCALE in gemm_coopmat.comp): blocks
 * that hold whole K slices of bk along K, and along N the `rows` weight rows that one accumulator covers (a
 * subgroup's tiles, or the whole block in the coopmat2 build). */
static bool acc_scale_fits(const fp8i_gemm_args *a, uint32_t rows, uint32_t bk)
{
    const fp8i_scales *s = &a->w_scales;
    const uint32_t mode = scale_mode(s, a->k);
    return (mode == SM_CHUNK || mode == SM_ELEM) && a->w.dtype != FP8_E5M2FNUZ && s->block_rows % rows == 0 &&
           s->block_cols % bk == 0;
}

static bool fits_grid(const fp8i_vk_device *vd, uint32_t gx, uint32_t gy)
{
    return gx <= vd->props.limits.maxComputeWorkGroupCount[0] && gy <= vd->props.limits.maxComputeWorkGroupCount[1];
}

/* The coopmat2 build of the kernel (FP8_NV_COOPMAT2): the subgroup kernel's tile, without the per-subgroup
 * staging area its epilogue needs, in a workgroup no larger than the device lists for workgroup-scope matrices
 * and in whole matrix granules. Its Y goes out through a tensor store: f32 or f16 (no bf16 matrix type to
 * convert to), from a 16-byte aligned base; the front door sends other outputs to the subgroup kernels. */
static bool cm2_tile_for(const fp8_device *dev, const fp8i_gemm_args *a, coop_tile *t)
{
    const fp8i_vk_device *vd = fp8i_vk_dev(dev);
    const fp8_matrix_shape *s = fp8i_coopmat2_shape(&dev->entry->info);
    if (!s || !s->m || !s->n || !s->k || !s->workgroup_invocations) return false;
    *t = coop_tile_for(vd, true, false); /* true: no staging area in shared memory (as in the emulation) */
    if (t->producers || coop_threads(t) > s->workgroup_invocations || !coop_tile_ok(vd, t, true, false)) return false;
    if (coop_bm(t) % s->m || coop_bn(t) % s->n || t->bk % s->k) return false;
    const uint32_t max = dev->entry->info.caps.nv_coopmat2_flexible_max_dimension;
    if (max && (coop_bm(t) > max || coop_bn(t) > max || t->bk > max)) return false;
    if (a->y.dtype == FP8_BF16 || a->y.offset % 16 != 0) return false;
    return fits_grid(vd, div_up(a->n, coop_bn(t)), div_up(a->m, coop_bm(t)));
}

/* The GEMV reduction: subgroupAdd where the device has it; FP8_VK_NO_SUBGROUP=1 tests the shared-memory one. */
static bool gemv_subgroups(const fp8i_vk_device *vd)
{
    return vd->feat.subgroup_arith && !fp8i_env_flag("FP8_VK_NO_SUBGROUP");
}

/* Test hook: run the cooperative-matrix paths on their plain-FMA twin (devices without matrix units). */
static bool emulate_coopmat(void) { return fp8i_env_flag("FP8_VK_EMULATE_COOPMAT"); }

/* Direct weights (W_DIRECT in gemm_coopmat.comp): the subgroups build their B fragments from weight bytes in
 * registers and only activations pass through shared memory. For FP8 weights that decode to fp16 by bit moves
 * with per-tensor or per-row scales (applied in the epilogue), 64-deep slices without producer subgroups, rows on
 * 16 bytes and K in whole 16-byte chunks, on a build whose B layout passed the device's check at open
 * (vk_device.c; the emulation has no layout to check), and with at least DIRECT_MIN_GROUPS workgroups: they are
 * twice as wide as the default tile's, and too few leave SMs idle. On the H100 (132 SMs, one such workgroup
 * each; run 147, E4M3 per-channel, M = 512-4096 on four shapes) the direct kernel lost at 64 workgroups (4096
 * rows, 512 tokens: 101-106 against 162-183 TFLOP/s) and won from 112 (7168 x 2048 at 512 tokens: 161 against
 * 131) except at 448 (14336 x 4096 at 1024 tokens: 167-168 against 169-170). FP8_VK_COOPMAT_DIRECT=0 turns it
 * off, =1 drops the minimum (tests and benchmarks); the emulation drops it too, so that lavapipe tests the path
 * on small shapes. */
#define DIRECT_MIN_GROUPS 96u
/* The part of that choice the tile does not enter: the switch (env, FP8_VK_COOPMAT_DIRECT), the device's layout
 * check and the weights. */
static bool direct_operands_ok(const fp8i_vk_device *vd, const fp8i_gemm_args *a, bool nv, bool emulated,
                               const char *env)
{
    if (env && strcmp(env, "0") == 0) return false;
    if (!emulated && !vd->coop_b_direct[nv]) return false;
    const fp8_dtype w = a->w.dtype;
    if (w != FP8_E4M3FN && w != FP8_E4M3FNUZ && w != FP8_E5M2) return false;
    const uint32_t mode = scale_mode(&a->w_scales, a->k);
    if (mode != SM_NONE && mode != SM_ROW) return false;
    return a->k % 16 == 0 && a->w.offset % 16 == 0 && w_row_bytes(a) % 16 == 0;
}

/* And the part it does: its slices and producers, and the workgroups it gives this GEMM. */
static bool direct_tile_ok(const fp8i_vk_device *vd, const fp8i_gemm_args *a, const coop_tile *t, bool emulated,
                           const char *env)
{
    if (!emulated && !(env && strcmp(env, "1") == 0) &&
        (uint64_t)div_up(a->n, coop_bn(t)) * div_up(a->m, coop_bm(t)) < DIRECT_MIN_GROUPS)
        return false;
    return t->bk == 64 && !t->producers && coop_tile_ok(vd, t, emulated, true);
}

/* The subgroup kernels' tile, and whether it takes direct weights. The direct tile is only built for operands
 * that could take it, so that other GEMMs read the tile knob once. */
static coop_tile coop_choose(const fp8i_vk_device *vd, const fp8i_gemm_args *a, bool nv, bool *direct)
{
    const bool emulated = emulate_coopmat();
    const char *env = getenv("FP8_VK_COOPMAT_DIRECT");
    if (direct_operands_ok(vd, a, nv, emulated, env)) {
        const coop_tile t = coop_tile_for(vd, emulated, true);
        if ((*direct = direct_tile_ok(vd, a, &t, emulated, env))) return t;
    }
    *direct = false;
    return coop_tile_for(vd, emulated, false);
}

static void common_spec(const fp8_device *dev, const fp8i_gemm_args *a, uint32_t *spec)
{
    spec[SPEC_WDT] = a->w.dtype;
    spec[SPEC_XDT] = a->x.dtype;
    spec[SPEC_YDT] = a->y.dtype;
    spec[SPEC_BDT] = a->bias.buffer ? a->bias.dtype : 0;
    spec[SPEC_WS_DT] = a->w_scales.dtype;
    spec[SPEC_WS_MODE] = scale_mode(&a->w_scales, a->k);
    spec[SPEC_XS_DT] = a->x_scales.dtype;
    spec[SPEC_XS_MODE] = scale_mode(&a->x_scales, a->k);
    spec[SPEC_EXACT] = exact_decode(dev);
    /* Block shapes of BLOCK layouts become constants (few distinct ones in practice; ROW/TENSOR would vary
     * with the matrix shape and stay push constants). */
    if (a->w_scales.kind == FP8_SCALE_BLOCK) spec[20] = a->w_scales.block_rows, spec[21] = a->w_scales.block_cols;
    if (a->x_scales.kind == FP8_SCALE_BLOCK) spec[22] = a->x_scales.block_rows, spec[23] = a->x_scales.block_cols;
}

static void bindings(const fp8i_gemm_args *a, fp8_buffer *b[FP8I_VK_BINDINGS])
{
    b[FP8I_VK_BIND_W] = a->w.buffer;
    b[FP8I_VK_BIND_WS] = a->w_scales.buffer;
    b[FP8I_VK_BIND_X] = a->x.buffer;
    b[FP8I_VK_BIND_XS] = a->x_scales.buffer;
    b[FP8I_VK_BIND_BIAS] = a->bias.buffer;
    b[FP8I_VK_BIND_Y] = a->y.buffer;
}

/* 8x8 per thread (128x128 blocks) on GPUs for large M; 4x4 (64x64) for small M and CPU devices (lavapipe),
 * where smaller blocks waste less. FP8_VK_TILED_T=4|8 overrides (tests). */
static uint32_t tiled_t(const fp8i_vk_device *vd, const fp8i_gemm_args *a)
{
    const char *env = getenv("FP8_VK_TILED_T");
    if (env && (atoi(env) == 4 || atoi(env) == 8)) return (uint32_t)atoi(env);
    return vd->props.deviceType != VK_PHYSICAL_DEVICE_TYPE_CPU && a->m > 64 ? 8 : 4;
}

/* Whether every X row starts on 16 bytes, so that kernels may load it in uvec4s. */
static bool x_vector_aligned(const fp8i_gemm_args *a)
{
    const uint32_t align = a->x.dtype == FP8_F32 ? 4 : (a->x.dtype == FP8_F16 || a->x.dtype == FP8_BF16) ? 8 : 16;
    return (a->x.offset / elem_bytes(a->x.dtype)) % align == 0 && a->x.row_stride % align == 0;
}

/* GEMV shape (shaders/gemv.comp): tokens per workgroup, rows per group, groups per workgroup, threads per
 * group, loads per row in flight. */
typedef struct gemv_shape { uint32_t mt, nr, groups, tg, unroll; } gemv_shape;

static gemv_shape gemv_shape_for(const fp8i_vk_device *vd, const fp8i_gemm_args *a)
{
    gemv_shape s;
    /* Every token of a decode step in one workgroup (weights read once); 16 at most keeps the registers. */
    s.mt = a->m < 16 ? a->m : 16;
    /* Groups of 32 threads, each on two rows; eight groups per workgroup where many tokens make the activations
     * the larger traffic, since a workgroup's groups share them through L1, four for one or two tokens. FP8
     * rows at two tokens: one row per group and eight groups, which on the H100 (M=1, N x K = 14336 x 4096)
     * reached 92% of the copy bandwidth against 87% with two rows, four groups and four loads in flight (one
     * token has its own shape below); E2M1 rows, half the bytes, measured better with the latter. */
    const bool fp8_decode = s.mt <= 2 && a->w.dtype != FP8_E2M1;
    const uint32_t ws_mode = scale_mode(&a->w_scales, a->k);
    s.tg = 32;
    s.nr = fp8_decode ? 1 : 2;
    s.groups = s.mt <= 2 && !fp8_decode ? 4 : 8;
    s.unroll = s.mt <= 2 ? 4 : 2;
    /* E2M1: more rows per group, one load each in flight. Its decode and multiplies take more instructions per
     * byte than FP8's, and the rows of a group share each activation load. On the H100 (runs 108-115, the four
     * shapes of fp8bench): at one token, eight rows where a 16-byte load needs at most one scale (MXFP4
     * 58-73% of the copy bandwidth -> 60-79%; NVFP4, two E4M3 scales a load, lost up to 4 points that way and
     * keeps two rows); from two to eight tokens four rows (two tokens: MXFP4 43-51% -> 47-58%, NVFP4 43-49%
     * -> 46-57%; four and eight: below). */
    if (a->w.dtype == FP8_E2M1) {
        if (s.mt == 1 && (ws_mode <= SM_ROW || (ws_mode == SM_CHUNK && a->w_scales.block_cols % 32 == 0)))
            s.nr = 8, s.unroll = 1;
        if (s.mt >= 2 && s.mt <= 8) s.nr = 4, s.unroll = 1;
    }
    /* Three to fifteen tokens: four groups, not eight (run 117, four and eight tokens on the four shapes: E4M3
     * both scale layouts 37-53% of copy -> 44-57% at four tokens, 22-31% -> 28-32% at eight; MXFP4, with the
     * four rows above, 26-32% -> 30-40% and 10-14% -> 16-24%; runs 121-122, 12 and 15 tokens: E4M3 10-22% ->
     * 14-22%, MXFP4 and NVFP4 5-10% -> 7-11%). Four E2M1 rows lost at 15 tokens, so they stop at eight.
     * Sixteen tokens (and forced passes of sixteen): four groups too, one load each in flight. On the H200 (run
     * 158, the four shapes, against eight groups and two loads in the same process) E4M3 per-channel took
     * 0.70-0.73x the time and MXFP4 0.82-0.93x; two groups of two loads came within 2% of it. */
    if (s.mt >= 3) s.groups = 4;
    if (s.mt == 16) s.unroll = 1;
    /* FP8 at one token: two rows per group, four groups, two loads each in flight. Run 128 on the H100, share
     * of copy on 4096 x 4096 / 14336 x 4096 / 7168 x 2048, against one row, eight groups and four loads:
     * E4M3 128x128 78 / 87-89 / 73% -> 80 / 92 / 80%, per-channel 79 / 91 / 76% -> 82 / 94 / 83% (run 124
     * had found two rows and four groups ahead on the rows of whole MoE decode layers). One load in flight
     * tied with 128x128 blocks and lost 2 points per-channel; rows of 8192 or more keep the shapes below. */
    if (fp8_decode && s.mt == 1 && a->k < 8192) s.nr = 2, s.groups = 4, s.unroll = 2;
    /* Long FP8 rows at one token: two rows split over 64 threads (two subgroups), two such groups a workgroup,
     * two loads per row and thread in flight. On the H100 the best shapes of 4096 x 14336 were 128 threads on
     * one row for per-channel scales (83% -> 93% of the copy bandwidth; 64 threads: 90-92%) and 64 threads
     * on two rows, one load each in flight, for 128x128 blocks (run 109: 81% -> 91%). On the H200, whose
     * copy bandwidth is 1.37x the H100's, both lost to this shape (run 152, alternated: per-channel 78-79% ->
     * 89-90%, 128x128 blocks 82.5% -> 85%); it is the one we keep, since the H200 is the card we can measure now.
     * At K = 4096 the long-row shapes lost on the H100 (75% against 92% on 14336 x 4096). */
    if (fp8_decode && s.mt == 1 && a->k >= 8192) s.tg = 64, s.groups = 2, s.nr = 2, s.unroll = 2;
    /* CPU devices (lavapipe) have no memory latency to hide, and compile unrolled code slowly. */
    if (vd->props.deviceType == VK_PHYSICAL_DEVICE_TYPE_CPU) s.groups = 1, s.unroll = 1;
    /* tg,groups,nr,unroll, for tuning on a device: FP8_VK_GEMV for one or two tokens, FP8_VK_GEMV_BATCH for more. */
    const char *env = getenv(s.mt <= 2 ? "FP8_VK_GEMV" : "FP8_VK_GEMV_BATCH");
    gemv_shape e = s;
    if (env && sscanf(env, "%u,%u,%u,%u", &e.tg, &e.groups, &e.nr, &e.unroll) == 4 && e.tg >= 1 && e.groups >= 1 &&
        e.nr >= 1 && e.nr <= 8 && e.unroll >= 1 && e.unroll <= 8)
        s = e;
    /* Short rows: fewer threads per group, so that most of them still have a load to make. */
    const uint32_t loads = a->k / (a->w.dtype == FP8_E2M1 ? 32 : 16);
    while (s.tg > 8 && s.tg / 2 >= loads) s.tg /= 2;
    /* Within the device's workgroup size and shared memory (one partial sum per thread and accumulator). */
    while (s.groups > 1 && ((uint64_t)s.tg * s.groups > vd->props.limits.maxComputeWorkGroupInvocations ||
                            (uint64_t)s.tg * s.groups * s.mt * s.nr * 4 > vd->props.limits.maxComputeSharedMemorySize))
        s.groups /= 2;
    return s;
}

static bool gemv_shape_ok(const fp8i_vk_device *vd, const gemv_shape *s)
{
    const uint64_t wg = (uint64_t)s->tg * s->groups;
    return wg <= vd->props.limits.maxComputeWorkGroupInvocations && wg <= vd->props.limits.maxComputeWorkGroupSize[0] &&
           wg * s->mt * s->nr * 4 <= vd->props.limits.maxComputeSharedMemorySize;
}

bool fp8i_vk_supports_path(const fp8_device *dev, fp8_path path, const fp8i_gemm_args *a)
{
    const fp8i_vk_device *vd = fp8i_vk_dev(dev);
    if (!vd || !vd->feat.storage16) return false; /* every GEMM shader declares 16-bit output storage */
    switch (path) {
    case FP8_PATH_VK_GEMV: {
        const gemv_shape g = gemv_shape_for(vd, a);
        const fp8i_vk_shader sh = gemv_subgroups(vd) ? FP8I_VK_SHADER_GEMV : FP8I_VK_SHADER_GEMV_NOSG;
        return fp8i_vk_shader_code(sh)->code && gemv_shape_ok(vd, &g) &&
               fits_grid(vd, div_up(a->n, g.nr * g.groups), div_up(a->m, g.mt));
    }
    case FP8_PATH_VK_GEMM_TILED:
        return fp8i_vk_shader_code(FP8I_VK_SHADER_GEMM_TILED)->code &&
               vd->props.limits.maxComputeWorkGroupInvocations >= TILED_WG &&
               fits_grid(vd, div_up(a->n, 16 * tiled_t(vd, a)), div_up(a->m, 16 * tiled_t(vd, a)));
    case FP8_PATH_VK_GEMM_NV_COOPMAT2: {
        coop_tile t;
        return fp8i_vk_shader_code(FP8I_VK_SHADER_GEMM_NV_COOPMAT2)->code && vd->feat.nv_coopmat2 && cm2_tile_for(dev, a, &t);
    }
    case FP8_PATH_VK_GEMM_NV_COOPMAT:
    case FP8_PATH_VK_GEMM_KHR_COOPMAT: {
        const bool emulated = emulate_coopmat(), nv = path == FP8_PATH_VK_GEMM_NV_COOPMAT;
        bool direct;
        const coop_tile t = coop_choose(vd, a, nv, &direct);
        if (!coop_tile_ok(vd, &t, emulated, direct) || !fits_grid(vd, div_up(a->n, coop_bn(&t)), div_up(a->m, coop_bm(&t))))
            return false;
        if (emulated) return fp8i_vk_shader_code(FP8I_VK_SHADER_GEMM_COOPMAT_EMU)->code != NULL;
        const fp8i_vk_shader sh = nv ? FP8I_VK_SHADER_GEMM_NV_COOPMAT : FP8I_VK_SHADER_GEMM_KHR_COOPMAT;
        if (!fp8i_vk_shader_code(sh)->code) return false;
        if (!(nv ? vd->feat.nv_coopmat_f16_16x16x16 : vd->feat.khr_coopmat_f16_16x16x16) || !vd->feat.fp16 ||
            !vd->feat.memory_model)
            return false;
        return fp8i_vk_subgroup32(vd);
    }
    default:
        return false;
    }
}

fp8_status fp8i_vk_gemm(fp8_device *dev, const fp8i_gemm_args *a)
{
    fp8i_vk_device *vd = fp8i_vk_dev(dev);
    uint32_t spec[FP8I_VK_MAX_SPEC] = {0};
    const uint32_t nspec = 26; /* ids 0..25; unused ones keep the shader's default (0) */
    common_spec(dev, a, spec);
    fp8i_vk_shader shader;
    uint32_t gx, gy, required_subgroup = 0;
    switch (a->path) {
    case FP8_PATH_VK_GEMV: {
        const gemv_shape g = gemv_shape_for(vd, a);
        shader = gemv_subgroups(vd) ? FP8I_VK_SHADER_GEMV : FP8I_VK_SHADER_GEMV_NOSG;
        spec[SPEC_WG] = g.tg * g.groups;
        spec[10] = g.nr;
        spec[11] = g.mt;
        spec[12] = a->w.offset % 16 == 0 && w_row_bytes(a) % 16 == 0;
        spec[13] = x_vector_aligned(a);
        spec[14] = gemv_subgroups(vd);
        spec[15] = g.groups;
        spec[16] = g.unroll;
        gx = div_up(a->n, g.nr * g.groups);
        gy = div_up(a->m, g.mt);
        break;
    }
    case FP8_PATH_VK_GEMM_TILED:
        shader = FP8I_VK_SHADER_GEMM_TILED;
        spec[SPEC_WG] = TILED_WG;
    {
        const uint32_t t = tiled_t(vd, a);
        spec[10] = t;  /* TM */
        spec[11] = t;  /* TN */
        spec[12] = 16; /* BK */
        gx = div_up(a->n, 16 * t);
        gy = div_up(a->m, 16 * t);
        break;
    }
    case FP8_PATH_VK_GEMM_NV_COOPMAT:
    case FP8_PATH_VK_GEMM_KHR_COOPMAT:
    case FP8_PATH_VK_GEMM_NV_COOPMAT2: {
        /* One kernel, gemm_coopmat.comp, in three builds (or its emulation). */
        const bool cm2 = a->path == FP8_PATH_VK_GEMM_NV_COOPMAT2;
        coop_tile t;
        bool direct = false;
        if (!cm2) t = coop_choose(vd, a, a->path == FP8_PATH_VK_GEMM_NV_COOPMAT, &direct);
        else if (!cm2_tile_for(dev, a, &t)) /* supports_path said yes: only a changed environment gets here */
            return FP8I_FAIL(dev->ctx, FP8_ERR_UNSUPPORTED, "vulkan: no coopmat2 tile for this device");
        shader = cm2 ? FP8I_VK_SHADER_GEMM_NV_COOPMAT2
                 : a->path == FP8_PATH_VK_GEMM_NV_COOPMAT ? FP8I_VK_SHADER_GEMM_NV_COOPMAT : FP8I_VK_SHADER_GEMM_KHR_COOPMAT;
        spec[SPEC_WG] = coop_threads(&t);
        spec[10] = a->w.offset % 16 == 0 && w_row_bytes(a) % 16 == 0;
        spec[11] = x_vector_aligned(a);
        spec[12] = t.sg_m;
        spec[13] = t.sg_n;
        spec[14] = t.fm;
        spec[15] = t.fn;
        spec[16] = t.bk;
        spec[17] = acc_scale_fits(a, cm2 ? coop_bn(&t) : 16 * t.fn, t.bk); /* the rows one accumulator covers */
        spec[18] = COOP_GROUP_M;
        spec[19] = t.stages;
        spec[24] = t.producers;
        spec[25] = direct;
        if (emulate_coopmat() && !cm2) shader = FP8I_VK_SHADER_GEMM_COOPMAT_EMU;
        else if (!cm2 && vd->feat.subgroup_size != 32) required_subgroup = 32; /* coopmat2: the driver's layout */
        gx = div_up(a->n, coop_bn(&t));
        gy = div_up(a->m, coop_bm(&t));
        break;
    }
    default:
        return FP8I_FAIL(dev->ctx, FP8_ERR_UNSUPPORTED, "vulkan: path %s is not a Vulkan kernel", fp8_path_name(a->path));
    }
    VkPipeline pipeline;
    fp8_status st = fp8i_vk_pipeline_get(vd, shader, spec, nspec, required_subgroup, &pipeline);
    if (st != FP8_OK) return st;
    gemm_push push;
    fill_push(a, &push);
    fp8_buffer *b[FP8I_VK_BINDINGS];
    bindings(a, b);
    vd->prof_next = fp8_path_name(a->path);
    return fp8i_vk_dispatch(vd, pipeline, b, 1u << FP8I_VK_BIND_Y, &push, sizeof push, gx, gy, 1);
}
