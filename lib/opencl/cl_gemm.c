/* GEMM on OpenCL: the fused kernels (GEMV for small M, local-memory tiles otherwise), their parameter
 * block, and which path can run which arguments. */
#include "cl_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The -D options every fused kernel takes first: WDT, XDT, WAL, XAL, SPOW2. */
#define COMMON_DEFINES 5

/* Kernel indices are 32-bit: keep every element index well inside that range. */
#define MAX_DIM (1u << 30)

static size_t row_bytes(fp8_dtype dt, size_t elements)
{
    size_t b = 0;
    fp8_dtype_storage_size(dt, elements, &b); /* validated sizes: cannot fail here */
    return b;
}

/* Shift (plus one) for a block index along a dimension: 32 when one block spans it, 0 when not a power of two. */
static uint32_t block_shift1(uint32_t size, uint32_t blocks)
{
    if (blocks <= 1) return 32;
    if (size & (size - 1)) return 0;
    uint32_t l = 0;
    while ((1u << l) != size) l++;
    return l + 1;
}

bool fp8i_cl_fill_scale(const fp8i_scales *s, fp8k_scale *out)
{
    *out = (fp8k_scale){.offset = s->offset, .dtype = s->dtype == FP8_DTYPE_INVALID ? 0u : (fp8k_u32)s->dtype,
                        .mode = FP8K_SCALE_ROWCONST, .block_rows = s->block_rows, .block_cols = s->block_cols,
                        .blocks_per_row = s->blocks_per_row, .tensor = s->tensor_scale,
                        .rows_shift1 = block_shift1(s->block_rows, s->block_row_count),
                        .cols_shift1 = block_shift1(s->block_cols, s->blocks_per_row)};
    return !out->dtype || (out->rows_shift1 && out->cols_shift1);
}

static bool fill_scale(const fp8i_scales *s, fp8k_scale *out)
{
    const bool pow2 = fp8i_cl_fill_scale(s, out);
    out->mode = !out->dtype || s->blocks_per_row <= 1 ? FP8K_SCALE_ROWCONST
                : s->block_cols % 16 == 0            ? FP8K_SCALE_K16
                                                     : FP8K_SCALE_GENERIC;
    return pow2;
}

/* Fills the parameter block; returns whether the scale block indices are shifts (SPOW2). */
static bool fill_params(const fp8i_gemm_args *a, fp8k_gemm_params *p)
{
    *p = (fp8k_gemm_params){0};
    p->w_off = a->w.offset;
    p->x_off = a->x.offset;
    p->y_off = a->y.offset;
    p->w_stride = row_bytes(a->w.dtype, a->w.row_stride);
    p->x_stride = row_bytes(a->x.dtype, a->x.row_stride);
    p->y_stride = a->y.row_stride;
    const bool pow2 = fill_scale(&a->w_scales, &p->ws) & fill_scale(&a->x_scales, &p->xs);
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
    return pow2;
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

/* The GEMV's shape for M tokens: activation rows per pass (MT), weight rows per warp (NR), loads per row in
 * flight (U), warps per work-group. Chosen by sweeps on the H100 (NVIDIA OpenCL, fp8bench with f16
 * activations, 4096 x 4096 and 14336 x 4096, share of the copy bandwidth): at M = 1 four rows per warp, two
 * loads in flight and four warps for FP8 (31.8% / 53.8%; one row per warp with 32 bytes per lane, the
 * previous layout, 19.6% / 29.9%), one load and eight warps for E2M1, whose decode and activation loads cost
 * twice per byte (13.3% / 22.3%); with more tokens eight rows of up to four tokens (M = 4: 19.2% / 31.3%,
 * against 17.5% / 24.1% for four rows; M = 16 matched eight tokens of eight rows and beat four rows of eight
 * tokens by 1.6x on 14336 x 4096). Each accumulator is a register, so MT * NR stays <= 32.
 * Where the warp sums go through PTX shuffles (d->ptx) a sweep of the same kind (sixth session, the four shapes
 * of the benchmark, same-run copy kernel) preferred fewer rows: E2M1 at M = 1 two rows and two loads, four warps
 * (24.1 / 37.4 / 32.9 / 24.0% of copy against 19.2 / 37.9 / 24.0 / 23.5% for the shape above); four rows of four
 * tokens at M = 4 (E4M3 38.5-53.8% against 29.6-46.1% for eight rows); at M = 16, eight tokens of four rows took
 * 0.83x (E4M3) and 0.95x (E2M1) the summed time of four tokens of four rows. M = 8 was not measured; it takes
 * the sixteen-token shape, one pass.
 * Long rows at one or two tokens are shared along K by two warps (run 79, NVIDIA with PTX, same call: 4096 x
 * 14336 at one token went from 60-64% to 75-76% of copy for E4M3 and from 35% to 41% for MXFP4; at K = 4096 and
 * 2048 sharing lost up to 4 points on 14336 x 4096 and 7168 x 2048, and four or eight warps per row lost more),
 * as the Vulkan GEMV does. Run 81, two tokens on 4096 x 14336: 56-60% -> 74-75% (E4M3), 24% -> 35% (MXFP4); at
 * four tokens it gained and lost by format (-4 to +4.5 points), at sixteen it lost, so it stops at two.
 * One FP8 token where the read-only loads run and four rows per warp would put more than 16 warps per compute unit
 * in the grid and eight would not: eight rows per warp and one load in flight, so that the weights take the
 * read-only loads (weight_ldg). Run 104 (H100, 14336 x 4096, E4M3): 83.9-84.1% of copy against 77.3-78.5% for four rows and
 * two loads with plain loads, the default before; eight rows with two loads in flight ran at 64.6-67.1%.
 * FP8_CL_GEMV=tokens,rows,loads,warps[,splits] overrides it for tuning on a device. */
/* The GEMV grids' warp budget: 16 warps per compute unit. Below it the read-only weight loads gained and above it
 * they lost (weight_ldg), and the tensor-core GEMV splits K until its grid reaches it. */
static uint64_t warp_budget(const fp8_device *dev)
{
    return 16 * (uint64_t)(dev->entry->info.compute_units ? dev->entry->info.compute_units : 8);
}

static fp8i_cl_gemv_shape gemv_shape(const fp8_device *dev, const fp8i_gemm_args *a)
{
    const fp8i_cl_device *d = fp8i_cl_dev(dev);
    const bool e2m1 = a->w.dtype == FP8_E2M1;
    fp8i_cl_gemv_shape s = e2m1 ? (fp8i_cl_gemv_shape){1, 4, 1, 8, 1} : (fp8i_cl_gemv_shape){1, 4, 2, 4, 1};
    if (d->ptx && e2m1) s = (fp8i_cl_gemv_shape){1, 2, 2, 4, 1};
    if (a->m > 1) s = (fp8i_cl_gemv_shape){a->m == 2 ? 2 : 4, 8, 1, 4, 1};
    if (a->m > 1 && d->ptx) s = (fp8i_cl_gemv_shape){a->m == 2 ? 2 : a->m < 8 ? 4 : 8, 4, 1, 4, 1};
    if (a->m <= 2 && a->k >= 8192) s.splits = 2;
    const uint64_t warps4 = (uint64_t)(a->n + 3) / 4 * s.splits, warps8 = (uint64_t)(a->n + 7) / 8 * s.splits;
    if (d->ptx_fp8 && !e2m1 && a->m == 1 && warps4 > warp_budget(dev) && warps8 <= warp_budget(dev)) {
        s.rows = 8;
        s.loads = 1;
    }
    const fp8i_cl_gemv_shape *o = &d->gemv_shape;
    fp8i_cl_gemv_shape e = {0, 0, 0, 0, 0};
    const char *env = getenv("FP8_CL_GEMV");
    if (env) sscanf(env, "%u,%u,%u,%u,%u", &e.tokens, &e.rows, &e.loads, &e.warps, &e.splits);
    if (!o->tokens && !o->rows && !o->loads && !o->warps && !o->splits) o = &e;
    if (o->tokens == 1 || o->tokens == 2 || o->tokens == 4 || o->tokens == 8 || o->tokens == 16) s.tokens = o->tokens;
    if (o->rows == 1 || o->rows == 2 || o->rows == 4 || o->rows == 8) s.rows = o->rows;
    if (o->loads == 1 || o->loads == 2 || o->loads == 4 || o->loads == 8) s.loads = o->loads;
    if (o->warps >= 1 && o->warps <= 32) s.warps = o->warps;
    if (o->splits == 1 || o->splits == 2 || o->splits == 4 || o->splits == 8) s.splits = o->splits;
    return s;
}

static size_t round_up(size_t v, size_t to) { return (v + to - 1) / to * to; }

/* Whether the GEMV streams its weights through ld.global.nc.L1::no_allocate (WLDG). Run 101
 * (H100, same call, alternated twice, share of copy at M = 1): with gemv.cl's grid at most 16 warps per compute
 * unit it gained 2-8 points (4096 x 14336 E4M3 75-77% -> 83%, 4096 x 4096 and 7168 x 2048 +2-4); on 14336 x 4096
 * (27 warps per SM) it lost 3 (128x128 blocks) and 12 (per-channel). The tensor-core GEMV gained 2-4 points on
 * every FP8 row at 8 tokens. FP8_CL_GEMV_LDG=0 / 1 overrides. */
static uint32_t weight_ldg(const fp8_device *dev, bool mma, uint64_t warps)
{
    const fp8i_cl_device *d = fp8i_cl_dev(dev);
    /* L1::no_allocate needs sm_70 and PTX ISA 7.4; take it where the device layer ran sm_89's FP8 conversion. */
    if (!d->ptx_fp8) return FP8I_CL_OMIT;
    const char *e = getenv("FP8_CL_GEMV_LDG");
    if (e && (e[0] == '0' || e[0] == '1') && !e[1]) return e[0] == '1' ? 1 : FP8I_CL_OMIT;
    return mma || warps <= warp_budget(dev) ? 1 : FP8I_CL_OMIT;
}

/* The tuning override of the tensor-core GEMV: the test hook, else FP8_CL_GEMV_MMA ("0" turns the kernel off,
 * "1" runs it wherever it can, "tiles,loads,splits,order" sets its shape and runs it wherever it can). */
static fp8i_cl_gemv_mma_shape gemv_mma_override(const fp8i_cl_device *d)
{
    fp8i_cl_gemv_mma_shape o = d->gemv_mma;
    if (o.off || o.tiles || o.loads || o.splits || o.order) return o;
    const char *env = getenv("FP8_CL_GEMV_MMA");
    if (env && strcmp(env, "0") == 0) o.off = 1;
    else if (env && strcmp(env, "1") == 0) o.order = 1;
    else if (env) sscanf(env, "%u,%u,%u,%u", &o.tiles, &o.loads, &o.splits, &o.order);
    return o;
}

/* Whether gemv_mma.cl runs this call: where it can (its header says what it assumes) and where it was faster.
 * On the H100 (runs 95-97, f16 activations, the four shapes of fp8bench, same process) it took 0.67-0.85x the
 * time of gemv.cl at 3 tokens, 0.34-0.95x at 4 and 8, and 0.85-0.97x with MXFP4 at one token; with FP8 weights
 * at one and two tokens it was as fast on the short shapes and up to 1.11x slower on the long ones, so those
 * stay on gemv.cl unless an override asks for it. */
static bool gemv_mma_fits(const fp8i_cl_device *d, const fp8i_gemm_args *a, const fp8k_gemm_params *p,
                          const fp8i_cl_gemv_mma_shape *o)
{
    if (!d->ptx_fp8 || o->off) return false;
    const fp8_dtype w = a->w.dtype;
    if (w != FP8_E2M1 && a->m < 3 && !(o->tiles || o->loads || o->splits || o->order)) return false;
    if ((w != FP8_E4M3FN && w != FP8_E5M2 && w != FP8_E2M1) || a->x.dtype != FP8_F16) return false;
    if (!(p->flags & FP8K_W_ALIGNED) || !(p->flags & FP8K_X_ALIGNED)) return false;
    const uint32_t segk = w == FP8_E2M1 ? 128 : 64, blk = w == FP8_E2M1 ? 32 : 64;
    if (a->k % segk || p->xs.mode != FP8K_SCALE_ROWCONST || p->ws.mode == FP8K_SCALE_GENERIC) return false;
    return p->ws.mode == FP8K_SCALE_ROWCONST || a->w_scales.block_cols % blk == 0;
}

/* The tensor-core GEMV: one tile of 16 rows per warp, four (FP8) or two (E2M1) segments in flight, and K split
 * over up to eight warps until the grid holds 16 warps per compute unit, as long as each warp keeps two rounds
 * of loads. Shapes chosen on the H100 (run 96, docs/BENCHMARKS.md, OpenCL GEMV); FP8_CL_GEMV_MMA overrides them. */
static fp8_status gemv_mma(fp8_device *dev, const fp8i_gemm_args *a, const fp8k_gemm_params *p,
                           const fp8i_cl_define common[COMMON_DEFINES], fp8i_cl_gemv_mma_shape o)
{
    const bool e2m1 = a->w.dtype == FP8_E2M1;
    const uint32_t tiles = o.tiles == 1 || o.tiles == 2 ? o.tiles : 1;
    const uint32_t loads = o.loads >= 1 && o.loads <= 8 ? o.loads : e2m1 ? 2 : 4;
    const uint32_t nseg = a->k / (e2m1 ? 128 : 64), groups = (a->n + 16 * tiles - 1) / (16 * tiles);
    const uint64_t target = warp_budget(dev);
    uint32_t splits = 1;
    if (o.splits == 1 || o.splits == 2 || o.splits == 4 || o.splits == 8) splits = o.splits;
    else
        while (splits < 8 && (uint64_t)groups * splits < target && nseg >= 2 * 2 * splits * loads) splits *= 2;
    const uint32_t per_wg = splits >= 8 ? 1 : 8 / splits; /* row groups per work-group: 256 work-items */
    const int wblk = p->ws.mode == FP8K_SCALE_K16, segrun = o.order == 2;
    /* MXFP4's scales: four E8M0 bytes per row and segment, read as one word where they sit on 4 bytes */
    const int wmx = e2m1 && wblk && a->w_scales.dtype == FP8_E8M0 && a->w_scales.block_rows == 1 &&
                    a->w_scales.block_cols == 32 && p->ws.offset % 4 == 0;
    const fp8i_cl_define defines[COMMON_DEFINES + 8] = {
        common[0], common[1], common[2], common[3], common[4],
        {"RT", tiles}, {"U", loads}, {"KS", splits}, {"RG", per_wg}, {"WBLK", (uint32_t)wblk}, {"WMX", (uint32_t)wmx},
        {"SEGRUN", (uint32_t)segrun}, {"WLDG", weight_ldg(dev, true, 0)}};
    cl_kernel k;
    size_t kmax = 0;
    fp8_status st = fp8i_cl_kernel_defined(dev, FP8I_CL_PROG_GEMV_MMA, "fp8_gemv_mma", defines, COMMON_DEFINES + 8, &k,
                                           &kmax);
    if (st != FP8_OK) return st;
    const size_t local = (size_t)32 * splits * per_wg;
    if (kmax < local)
        return FP8I_FAIL(dev->ctx, FP8_ERR_UNSUPPORTED, "opencl: the tensor-core GEMV needs %zu work-items per group "
                         "on %s", local, dev->entry->info.name);
    if ((st = set_args(dev, k, a, p)) != FP8_OK) return st;
    const size_t global = (size_t)((groups + per_wg - 1) / per_wg) * local;
    cl_int err = clSetKernelArg(k, 7, sizeof(float) * 4 * tiles * local, NULL);
    if (err != CL_SUCCESS) return fp8i_cl_status(dev->ctx, err, "clSetKernelArg (gemv_mma local)");
    return fp8i_cl_launch(dev, k, 1, &global, &local);
}

fp8_status fp8i_cl_gemm_fused(fp8_device *dev, const fp8i_gemm_args *a, bool gemv)
{
    fp8i_cl_device *d = fp8i_cl_dev(dev);
    fp8k_gemm_params p;
    const bool pow2 = fill_params(a, &p);
    /* Alignment and shift-vs-divide are compile-time: a run-time choice between loads or between a shift and
     * a division is if-converted by compilers into doing both. */
    const fp8i_cl_define common[COMMON_DEFINES] = {
        {"WDT", (uint32_t)a->w.dtype}, {"XDT", (uint32_t)a->x.dtype}, {"WAL", (p.flags & FP8K_W_ALIGNED) != 0},
        {"XAL", (p.flags & FP8K_X_ALIGNED) != 0}, {"SPOW2", pow2}};
    cl_kernel k;
    size_t kmax = 0;
    fp8_status st;
    if (gemv) {
        const fp8i_cl_gemv_mma_shape over = gemv_mma_override(d);
        if (gemv_mma_fits(d, a, &p, &over)) return gemv_mma(dev, a, &p, common, over);
        const fp8i_cl_gemv_shape g = gemv_shape(dev, a);
        const size_t acc = (size_t)g.tokens * g.rows; /* partial sums per lane */
        /* K16 scale modes are compiled in (H100, run 64: 1.5-3 points of copy for 128x128 blocks and MXFP4);
         * the others stay a run-time test, which ran per-channel scales faster (compiled in: 4096 x 14336 E4M3
         * at one token fell from 64% to 47% of copy). GENERIC code enters the inner loop only where compiled. */
        const uint32_t wsm = p.ws.mode == FP8K_SCALE_K16 ? FP8K_SCALE_K16 : FP8I_CL_OMIT;
        const uint32_t xsm = p.xs.mode == FP8K_SCALE_K16 ? FP8K_SCALE_K16 : FP8I_CL_OMIT;
        /* Warps per work-group within what the compiled kernel can launch and the device's local memory (one
         * partial sum per accumulator and work-item), in whole row groups of `splits` warps; where even one row
         * group does not fit, the kernel is built again with one warp per row. */
        uint32_t splits = g.splits;
        size_t warps = g.warps;
        while (splits > 1 && warps % splits) splits /= 2;
        for (;;) {
            const fp8i_cl_define defines[COMMON_DEFINES + 9] = {
                common[0], common[1], common[2], common[3], common[4],
                {"MT", g.tokens}, {"NR", g.rows}, {"U", g.loads}, {"KS", splits},
                {"WGEN", p.ws.mode == FP8K_SCALE_GENERIC}, {"XGEN", p.xs.mode == FP8K_SCALE_GENERIC}, {"WSM", wsm},
                {"XSM", xsm}, {"WLDG", weight_ldg(dev, false, (uint64_t)(a->n + g.rows - 1) / g.rows * splits)}};
            if ((st = fp8i_cl_kernel_defined(dev, FP8I_CL_PROG_GEMV, "fp8_gemv", defines, COMMON_DEFINES + 9, &k,
                                             &kmax)) != FP8_OK)
                return st;
            if (kmax < 32 || sizeof(float) * acc * 32 > d->local_mem)
                return FP8I_FAIL(dev->ctx, FP8_ERR_UNSUPPORTED, "opencl: the GEMV kernel (%ux%u accumulators) needs 32 "
                                 "work-items and %zu bytes of local memory per group; %s allows %zu and %u",
                                 g.tokens, g.rows, sizeof(float) * acc * 32, dev->entry->info.name, kmax, d->local_mem);
            while (warps > splits && (32 * warps > kmax || sizeof(float) * acc * 32 * warps > d->local_mem))
                warps = (warps / 2) % splits == 0 && warps / 2 >= splits ? warps / 2 : splits;
            if (32 * warps <= kmax && sizeof(float) * acc * 32 * warps <= d->local_mem) break;
            splits = 1; /* one row group of `splits` warps is too many here */
        }
        if ((st = set_args(dev, k, a, &p)) != FP8_OK) return st;
        const size_t rows = warps / splits * g.rows;
        const size_t local = 32 * warps, global = (size_t)((a->n + rows - 1) / rows) * local;
        cl_int err = clSetKernelArg(k, 7, sizeof(float) * acc * local, NULL);
        if (err != CL_SUCCESS) return fp8i_cl_status(dev->ctx, err, "clSetKernelArg (gemv local)");
        return fp8i_cl_launch(dev, k, 1, &global, &local);
    }
    const fp8i_cl_tiles t = d->tiles;
    const fp8i_cl_define defines[COMMON_DEFINES + 5] = {
        common[0], common[1], common[2], common[3], common[4],
        {"BM", t.bm}, {"BN", t.bn}, {"BK", t.bk}, {"TM", t.tm}, {"TN", t.tn}};
    if ((st = fp8i_cl_kernel_defined(dev, FP8I_CL_PROG_GEMM, "fp8_gemm_tiled", defines, COMMON_DEFINES + 5, &k,
                                     &kmax)) != FP8_OK)
        return st;
    if ((st = set_args(dev, k, a, &p)) != FP8_OK) return st;
    const size_t local[2] = {(size_t)(t.bn / t.tn) * (t.bm / t.tm), 1};
    const size_t global[2] = {round_up(a->n, t.bn) / t.bn * local[0], round_up(a->m, t.bm) / t.bm};
    if (local[0] > kmax)
        return FP8I_FAIL(dev->ctx, FP8_ERR_UNSUPPORTED, "opencl: the tiled GEMM kernel runs at most %zu work-items per "
                         "group on %s, its tiles need %zu", kmax, dev->entry->info.name, local[0]);
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
