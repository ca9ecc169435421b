/* The Vulkan MoE kernels against the CPU device on the same inputs, beyond what the per-backend MoE tests
 * reach: both grouped-GEMM kernels (per-expert at row_align 1, 4, 8 and dense; tiled at 16, 32, 64, 128 and
 * dense) over weight formats and scale layouts, activation and output dtypes, biases, per-expert tensor
 * scales and gated and plain epilogues; activation quantization bit for bit with fp8_quantize (ties,
 * subnormals, saturation, zero rows, f16/bf16 sources); grouping across many 256-slot chunks and E = 4096;
 * routing at the front door's limits; and the device error word through fp8_device_synchronize (reported
 * once, first error wins, not consumed by reads), corrupt plans included. The validation layer must stay
 * silent. */
#include "test_moe_ref.h"

#include "backend/moe.h"
#include "vulkan/vk_internal.h"

#include <math.h>
#include <string.h>

#define NONE FP8_MOE_NONE
#define SENTINEL 12345.0f

static fp8_context *ctx;
static fp8_device *vk, *cpu;

/* A buffer on each device with the same contents. */
typedef struct dual {
    fp8_buffer *v, *c;
    size_t bytes;
} dual;

static dual dual_make(size_t bytes, const void *init)
{
    dual d = {NULL, NULL, bytes};
    CHECK_STATUS(fp8_buffer_create(vk, bytes ? bytes : 4, &d.v), FP8_OK);
    CHECK_STATUS(fp8_buffer_create(cpu, bytes ? bytes : 4, &d.c), FP8_OK);
    if (init && bytes) {
        fp8_buffer_write(d.v, 0, init, bytes);
        fp8_buffer_write(d.c, 0, init, bytes);
    }
    return d;
}

static void dual_free(dual *d)
{
    fp8_buffer_free(d->v);
    fp8_buffer_free(d->c);
    d->v = d->c = NULL;
}

static fp8_buffer *side(const dual *d, int on_vk) { return on_vk ? d->v : d->c; }

/* Host floats encoded to dtype (F32/F16/BF16), as bytes. */
static void *encode_floats(fp8_dtype dt, const float *v, size_t n, size_t *bytes)
{
    fp8_dtype_storage_size(dt, n, bytes);
    void *b = malloc(*bytes ? *bytes : 4);
    fp8_encode_array(dt, v, n, b, *bytes, FP8_OVERFLOW_CAST);
    return b;
}

/* ------------------------------------------------------------------------------------------------
 * Grouped GEMM.
 * ---------------------------------------------------------------------------------------------- */
typedef struct gcase {
    const char *name;
    uint32_t m, e, k, n, kk;      /* tokens, experts, top_k, weight rows N, K */
    uint32_t align;               /* 0: dense (plan.m = m, one expert) */
    fp8_dtype wdt;
    fp8_scale_layout wl;
    fp8_dtype xdt;                /* F32/F16/BF16, or E4M3FN/E5M2 with x scales */
    uint32_t x_block;             /* FP8 x: 0 per row, else 1 x x_block */
    fp8_dtype ydt;
    fp8_moe_activation act;
    int gathered, bias, tscale;
    size_t gap;                   /* bytes between experts beyond their size */
    int nan_w;                    /* a NaN code in two experts' weight rows (FP8, 1 byte a code) */
} gcase;

static const fp8_scale_layout ROW = {.kind = FP8_SCALE_ROW, .dtype = FP8_F32};
static const fp8_scale_layout B128 = {.kind = FP8_SCALE_BLOCK, .dtype = FP8_F32, .block_rows = 128, .block_cols = 128};
static const fp8_scale_layout MX = {.kind = FP8_SCALE_BLOCK, .dtype = FP8_E8M0, .block_rows = 1, .block_cols = 32};
static const fp8_scale_layout NV = {.kind = FP8_SCALE_BLOCK, .dtype = FP8_E4M3FN, .block_rows = 1, .block_cols = 16};
static const fp8_scale_layout ODD = {.kind = FP8_SCALE_BLOCK, .dtype = FP8_F32, .block_rows = 3, .block_cols = 24};
static const fp8_scale_layout NOSC = {.kind = FP8_SCALE_NONE};

static int gated(fp8_moe_activation a)
{
    return a == FP8_MOE_ACT_SWIGLU || a == FP8_MOE_ACT_GEGLU || a == FP8_MOE_ACT_GEGLU_TANH;
}

/* Whether row tiles go to the cooperative-matrix kernel here (vk_moe.c's rule). */
static int coopmat_expected(void)
{
    const char *no = getenv("FP8_VK_MOE_NO_COOPMAT"), *emu = getenv("FP8_VK_EMULATE_COOPMAT");
    if (no && *no && strcmp(no, "0") != 0) return 0;
    if (emu && *emu && strcmp(emu, "0") != 0) return 1;
    fp8_device_verdict v;
    return fp8_device_get_info(vk, NULL, &v) == FP8_OK &&
           (v.gemm_path == FP8_PATH_VK_GEMM_NV_COOPMAT || v.gemm_path == FP8_PATH_VK_GEMM_KHR_COOPMAT);
}

static uint32_t nan_pairs; /* compare_y: elements NaN on both devices, since it was last reset */

/* Device Y against the CPU's, R x n_out: NaN where the CPU's is (NaN weights), exactly equal where the CPU wrote
 * zeros or left sentinels (padding, unused rows, rows at or past `total`); elsewhere the relative Frobenius error
 * (returned), the worst element's error relative to its size plus 1e-3, and how many elements that was
 * (`compared`, may be NULL). */
static double compare_y(const char *name, const float *yv, const float *yc, uint32_t R, uint32_t n_out, uint32_t total,
                        double *worst, uint32_t *compared)
{
    double num = 0, den = 0;
    uint32_t bad_fixed = 0, n = 0, lost_nan = 0;
    *worst = 0;
    for (uint32_t r = 0; r < R; r++)
        for (uint32_t col = 0; col < n_out; col++) {
            const float a = yv[(size_t)r * n_out + col], b = yc[(size_t)r * n_out + col];
            if (isnan(b)) { /* a NaN weight's outputs: NaN on the device too */
                lost_nan += !isnan(a);
                nan_pairs += isnan(a) != 0;
                continue;
            }
            if (r >= total || b == SENTINEL || b == 0.0f) {
                bad_fixed += !(a == b);
                continue;
            }
            num += ((double)a - b) * ((double)a - b);
            den += (double)b * b;
            const double rel = fabs((double)a - b) / (fabs(b) + 1e-3);
            *worst = rel > *worst ? rel : *worst;
            n++;
        }
    CHECK(bad_fixed == 0, "%s: %u padding or unused elements differ", name, bad_fixed);
    CHECK(lost_nan == 0, "%s: %u elements NaN on the CPU are not NaN on the device", name, lost_nan);
    if (compared) *compared = n;
    return den > 0 ? sqrt(num / den) : 0;
}

static void run_gemm_case(const gcase *c, test_rng *rng)
{
    const int dense = c->align == 0;
    const uint32_t e = dense ? 1 : c->e, k = dense ? 1 : c->k, m = c->m, n = c->n, kk = c->kk;
    const uint32_t n_out = gated(c->act) ? n / 2 : n;
    /* Weights: E experts quantized on the host, `gap` bytes apart. */
    size_t one, scount = 0;
    fp8_dtype_storage_size(c->wdt, (size_t)n * kk, &one);
    fp8_scale_count(&c->wl, n, kk, &scount);
    const size_t sesz = c->wl.dtype == FP8_F32 ? 4 : 1, sone = scount * sesz;
    const size_t wstride = one + c->gap, sstride = sone + (c->gap ? 4 : 0);
    uint8_t *wq = calloc(1, wstride * e + 16), *ws = calloc(1, sstride * e + 16);
    float *tmp = malloc((size_t)n * kk * 4), *tsc = malloc(e * 4);
    for (uint32_t x = 0; x < e; x++) {
        for (size_t i = 0; i < (size_t)n * kk; i++) tmp[i] = test_rng_normal(rng) / sqrtf((float)kk);
        float ts = 1.0f;
        fp8_quantize_desc q = {.rows = n, .cols = kk, .src_dtype = FP8_F32, .src = tmp, .dst_dtype = c->wdt,
                               .dst = wq + x * wstride, .dst_bytes = one, .scale_layout = c->wl,
                               .scale = scount ? ws + x * sstride : NULL, .scale_bytes = sone, .tensor_scale = &ts};
        CHECK_STATUS(fp8_quantize(&q), FP8_OK);
        tsc[x] = c->tscale ? ts * (1.0f + 0.25f * (float)x) : ts;
    }
    if (c->nan_w) { /* NaN codes: inside a 16-byte unit of expert 0, and near the end of a row of the last */
        wq[(size_t)1 * kk + 5] = 0x7F;
        wq[(e - 1) * wstride + (size_t)(n - 2) * kk + kk - 3] = 0xFF;
    }
    dual wb = dual_make(wstride * e, wq), sb = dual_make(scount ? sstride * e : 0, ws), tb = dual_make(e * 4, tsc);
    /* Bias [E, N] (bf16 when asked for 2). */
    float *bias = malloc((size_t)e * n * 4);
    for (size_t i = 0; i < (size_t)e * n; i++) bias[i] = test_rng_uniform(rng, -0.5f, 0.5f);
    const fp8_dtype bdt = c->bias == 2 ? FP8_BF16 : FP8_F32;
    size_t bbytes;
    void *benc = encode_floats(bdt, bias, (size_t)e * n, &bbytes);
    dual bb = dual_make(bbytes, benc);

    /* Ids and the plan (grouped on both devices: the plans must agree word for word). */
    int32_t *ids = malloc((size_t)m * k * 4);
    for (uint32_t t = 0; t < m; t++)
        for (uint32_t j = 0; j < k; j++) {
            int32_t id;
            int dup;
            do {
                id = (int32_t)(test_rng_next(rng) % e);
                dup = 0;
                for (uint32_t i = 0; i < j; i++) dup |= ids[t * k + i] == id;
            } while (dup && k <= e);
            ids[t * k + j] = id;
        }
    dual ib = dual_make((size_t)m * k * 4, ids), pb = {0};
    size_t pbytes = 0;
    uint32_t R = m;
    uint32_t *pw = NULL;
    fp8_moe_plan plan = {.m = m, .top_k = k, .experts = e, .row_align = dense ? 1 : c->align};
    if (!dense) {
        CHECK_STATUS(fp8_moe_plan_size(m, k, e, c->align, &pbytes, &R), FP8_OK);
        pb = dual_make(pbytes, NULL);
        fp8i_moe_plan lay;
        fp8i_moe_plan_layout(m, k, e, c->align, &lay);
        uint32_t *pv = malloc(pbytes);
        pw = malloc(pbytes);
        for (int s = 0; s < 2; s++) {
            plan.buffer = side(&pb, s);
            fp8_moe_group_desc g = {.ids = {.buffer = side(&ib, s), .dtype = FP8_I32}, .plan = plan};
            CHECK_STATUS(fp8_moe_group(s ? vk : cpu, &g), FP8_OK);
        }
        fp8_buffer_read(pb.v, 0, pv, pbytes);
        fp8_buffer_read(pb.c, 0, pw, pbytes);
        CHECK(memcmp(pv, pw, lay.workspace_at * 4) == 0, "%s: the device's plan differs from the CPU's", c->name);
        free(pv);
    }
    /* Activations: tokens (gathered, dense) or plan rows. */
    const uint32_t xrows = dense || c->gathered ? m : R;
    float *x = malloc((size_t)xrows * kk * 4);
    for (size_t i = 0; i < (size_t)xrows * kk; i++) x[i] = test_rng_normal(rng);
    void *xenc;
    size_t xbytes, xsbytes = 0;
    float *xs = NULL;
    fp8_scales xsc = {0};
    const int fp8x = c->xdt != FP8_F32 && c->xdt != FP8_F16 && c->xdt != FP8_BF16;
    if (fp8x) {
        const fp8_scale_layout l = c->x_block ? (fp8_scale_layout){.kind = FP8_SCALE_BLOCK, .dtype = FP8_F32,
                                                                   .block_rows = 1, .block_cols = c->x_block}
                                              : ROW;
        size_t cnt;
        fp8_scale_count(&l, xrows, kk, &cnt);
        xbytes = (size_t)xrows * kk;
        xenc = malloc(xbytes);
        xsbytes = cnt * 4;
        xs = malloc(xsbytes);
        fp8_quantize_desc q = {.rows = xrows, .cols = kk, .src_dtype = FP8_F32, .src = x, .dst_dtype = c->xdt,
                               .dst = xenc, .dst_bytes = xbytes, .scale_layout = l, .scale = xs, .scale_bytes = xsbytes};
        CHECK_STATUS(fp8_quantize(&q), FP8_OK);
        xsc.layout = l;
    } else {
        xenc = encode_floats(c->xdt, x, (size_t)xrows * kk, &xbytes);
    }
    dual xb = dual_make(xbytes, xenc), xsb = dual_make(xsbytes, xs);
    /* Y with sentinels (rows past total_rows must keep them). */
    size_t ybytes;
    float *y0 = malloc((size_t)R * n_out * 4);
    for (size_t i = 0; i < (size_t)R * n_out; i++) y0[i] = SENTINEL;
    void *yenc = encode_floats(c->ydt, y0, (size_t)R * n_out, &ybytes);
    dual yb = dual_make(ybytes, yenc);

    float *yv = malloc((size_t)R * n_out * 4), *yc = malloc((size_t)R * n_out * 4);
    for (int s = 0; s < 2; s++) {
        fp8_moe_gemm_desc d = {.plan = plan, .n = n, .k = kk, .activation = c->act, .x_gathered = (uint32_t)c->gathered};
        d.plan.buffer = dense ? NULL : side(&pb, s);
        d.weights.w = (fp8_operand){.buffer = side(&wb, s), .dtype = c->wdt};
        d.weights.expert_stride = c->gap ? wstride : 0;
        d.weights.scales = (fp8_scales){.layout = c->wl, .buffer = scount ? side(&sb, s) : NULL};
        d.weights.scales_expert_stride = c->gap ? sstride : 0;
        if (c->tscale) d.weights.tensor_scales = (fp8_operand){.buffer = side(&tb, s), .dtype = FP8_F32};
        if (c->bias) d.weights.bias = (fp8_operand){.buffer = side(&bb, s), .dtype = bdt};
        d.x = (fp8_operand){.buffer = side(&xb, s), .dtype = c->xdt};
        if (fp8x) {
            d.x_scales = xsc;
            d.x_scales.buffer = side(&xsb, s);
        }
        d.y = (fp8_operand){.buffer = side(&yb, s), .dtype = c->ydt};
        CHECK_STATUS(fp8_moe_grouped_gemm(s ? vk : cpu, &d), FP8_OK);
        ref_download(side(&yb, s), 0, c->ydt, (size_t)R * n_out, s ? yv : yc);
    }
    CHECK_STATUS(fp8_device_synchronize(vk), FP8_OK);
    double worst;
    nan_pairs = 0;
    const double frob = compare_y(c->name, yv, yc, R, n_out, dense ? m : pw[7], &worst, NULL);
    if (c->nan_w) CHECK(nan_pairs > 0, "%s: no output of the NaN weight rows was NaN", c->name);
    /* Output rounding sets the floor; f32 accumulation (tiled kernel) is held to the GEMM tests' Frobenius 1e-5,
     * the cooperative-matrix kernel (fp16 operands) to their 2e-3. */
    const int coop_tile = dense ? m >= 64 : (c->align == 64 || c->align == 128);
    double tol = c->ydt == FP8_F32 ? 1e-5 : c->ydt == FP8_F16 ? 1e-3 : 8e-3;
    if (coop_tile && coopmat_expected() && tol < 2e-3) tol = 2e-3;
    CHECK(frob <= tol, "%s: relative error %.3g above %.3g", c->name, frob, tol);
    /* With two-float sums the per-expert kernel rounds each exactly accumulated result once: within an ulp or
     * two of the CPU. (Its default f32 sums are held to the Frobenius budget above.) */
    const int tiled = dense ? m >= 32 : (c->align == 16 || c->align == 32 || c->align == 64 || c->align == 128);
    const char *precise = getenv("FP8_VK_MOE_PRECISE_ACCUM");
    if (!tiled && c->ydt == FP8_F32 && precise && strcmp(precise, "0") != 0 && *precise)
        CHECK(worst < 1e-6, "%s: an element is off by %.3g", c->name, worst);
    printf("%-44s frob %.3g worst %.3g\n", c->name, frob, worst);

    free(wq); free(ws); free(tmp); free(tsc); free(bias); free(benc); free(ids); free(pw); free(x); free(xenc);
    free(xs); free(y0); free(yenc); free(yv); free(yc);
    dual_free(&wb); dual_free(&sb); dual_free(&tb); dual_free(&bb); dual_free(&ib); dual_free(&pb); dual_free(&xb);
    dual_free(&xsb); dual_free(&yb);
}

static void test_gemm(void)
{
    test_rng rng = {0x6e44};
    const gcase cases[] = {
        /* The per-expert kernel (row_align 1 and no tile height). */
        {"gemv e4m3 row swiglu bias", 9, 6, 2, 48, 96, 1, FP8_E4M3FN, ROW, FP8_F32, 0, FP8_F32, FP8_MOE_ACT_SWIGLU, 1, 1, 0, 0, 0},
        {"gemv e5m2 128x128 plan-order f16 out", 7, 5, 2, 40, 160, 4, FP8_E5M2, B128, FP8_F32, 0, FP8_F16, FP8_MOE_ACT_NONE, 0, 0, 0, 0, 0},
        {"gemv mxfp4 bf16 x geglu", 6, 4, 2, 64, 128, 1, FP8_E2M1, MX, FP8_BF16, 0, FP8_BF16, FP8_MOE_ACT_GEGLU, 1, 2, 0, 0, 0},
        {"gemv nvfp4 + tensor scales, e4m3 x 1x32", 6, 4, 2, 32, 96, 8, FP8_E2M1, NV, FP8_E4M3FN, 32, FP8_F32, FP8_MOE_ACT_SILU, 1, 0, 1, 0, 0},
        {"gemv fnuz odd blocks, f16 x, K tail", 5, 3, 2, 36, 72, 1, FP8_E4M3FNUZ, ODD, FP8_F16, 0, FP8_F32, FP8_MOE_ACT_GELU_TANH, 1, 1, 0, 8, 0},
        {"gemv e5m2fnuz no scales, e5m2 x row", 5, 3, 1, 24, 64, 1, FP8_E5M2FNUZ, NOSC, FP8_E5M2, 0, FP8_F32, FP8_MOE_ACT_GELU, 1, 0, 0, 16, 0},
        {"gemv dense (shared expert)", 3, 1, 1, 40, 80, 0, FP8_E4M3FN, B128, FP8_F32, 0, FP8_F32, FP8_MOE_ACT_GEGLU_TANH, 1, 1, 0, 0, 0},
        /* The tiled kernel at every tile height. */
        {"tiled 16 e4m3 row swiglu bias", 40, 4, 2, 48, 96, 16, FP8_E4M3FN, ROW, FP8_F32, 0, FP8_F32, FP8_MOE_ACT_SWIGLU, 1, 1, 0, 0, 0},
        {"tiled 32 e4m3 128x128, e4m3 x 1x32", 40, 3, 2, 144, 160, 32, FP8_E4M3FN, B128, FP8_E4M3FN, 32, FP8_F32, FP8_MOE_ACT_SWIGLU, 1, 0, 0, 0, 0},
        {"tiled 64 mxfp4 bf16 x/out, strided", 48, 3, 2, 64, 128, 64, FP8_E2M1, MX, FP8_BF16, 0, FP8_BF16, FP8_MOE_ACT_NONE, 1, 2, 0, 16, 0},
        {"tiled 128 nvfp4 + tensor scales", 40, 2, 2, 32, 64, 128, FP8_E2M1, NV, FP8_F32, 0, FP8_F16, FP8_MOE_ACT_SILU, 1, 1, 1, 0, 0},
        {"tiled 16 plan order, odd blocks, K tail", 30, 3, 2, 40, 72, 16, FP8_E5M2, ODD, FP8_F16, 0, FP8_F32, FP8_MOE_ACT_GEGLU, 0, 1, 0, 4, 0},
        {"tiled 32 unaligned rows (scalar loads)", 30, 3, 2, 36, 80, 32, FP8_E4M3FNUZ, ROW, FP8_F32, 0, FP8_F32, FP8_MOE_ACT_GELU, 1, 0, 0, 3, 0},
        {"tiled 64 e4m3 128x128 swiglu, bf16 x", 70, 4, 2, 96, 128, 64, FP8_E4M3FN, B128, FP8_BF16, 0, FP8_F32, FP8_MOE_ACT_SWIGLU, 1, 1, 0, 0, 0},
        {"tiled 128 e5m2 row geglu, e4m3 x row, edges", 80, 2, 2, 160, 96, 128, FP8_E5M2, ROW, FP8_E4M3FN, 0, FP8_BF16, FP8_MOE_ACT_GEGLU, 1, 2, 1, 0, 0},
        /* NaN weight codes in 16-byte weight units: each kernel's test for codes its bit moves cannot express. */
        {"gemv e4m3 NaN codes", 9, 6, 2, 48, 96, 1, FP8_E4M3FN, ROW, FP8_F32, 0, FP8_F32, FP8_MOE_ACT_SWIGLU, 1, 0, 0, 0, 1},
        {"tiled 64 e4m3 NaN codes, bf16 x", 70, 4, 2, 96, 128, 64, FP8_E4M3FN, B128, FP8_BF16, 0, FP8_F32, FP8_MOE_ACT_SWIGLU, 1, 0, 0, 0, 1},
        {"tiled dense (shared expert, m 70)", 70, 1, 1, 48, 96, 0, FP8_E4M3FN, ROW, FP8_F32, 0, FP8_F32, FP8_MOE_ACT_SWIGLU, 1, 1, 0, 0, 0},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) run_gemm_case(&cases[i], &rng);
}

/* ------------------------------------------------------------------------------------------------
 * Activation quantization, through the backend slot: bit for bit with fp8_quantize.
 * ---------------------------------------------------------------------------------------------- */
static void test_quantize(void)
{
    const fp8_dtype qdts[] = {FP8_E4M3FN, FP8_E5M2, FP8_E4M3FNUZ, FP8_E5M2FNUZ};
    const fp8_dtype sdts[] = {FP8_F32, FP8_F16, FP8_BF16};
    /* 1000 columns: rows of blocks of 16 and 32 take several workgroups each (256 columns apiece), and the
     * NaN of row 6 (column 818, read fourth by its invocation) must zero that row in all of them. */
    enum { ROWS = 7, COLS = 1000, MAXB = 64 };
    test_rng rng = {0x9a};
    /* wide: the bf16 values of the codes (what a layer feeds the per-expert GEMV), at an odd element offset. */
    for (int qi = 0; qi < 4; qi++)
        for (int si = 0; si < 3; si++)
            for (int bi = 0; bi < 3 * 2; bi++) {
                const fp8_dtype qd = qdts[qi], sd = sdts[si];
                const bool wide = bi >= 3;
                const size_t esz = wide ? 2 : 1, doff = wide ? 6 : 3;
                const uint32_t bc = bi % 3 == 2 ? 16 : bi % 3 ? 32 : COLS, nb = (COLS + bc - 1) / bc;
                const float qmax = (float)fp8_dtype_max(qd);
                float src[ROWS * COLS];
                for (int r = 0; r < ROWS; r++)
                    for (int c = 0; c < COLS; c++) {
                        float v = test_rng_normal(&rng) * (r == 2 ? 1e-30f : r == 3 ? 1e30f : 3.0f);
                        if (r == 1) v = 0.0f;                              /* a zero row: scale 1 */
                        if (r == 4) {                                      /* exact ties between codes */
                            const uint32_t code = (uint32_t)(test_rng_next(&rng) % 0x70);
                            const float a = fp8_decode_value(qd, code), b = fp8_decode_value(qd, code + 1);
                            v = (c % 32 == 0) ? qmax : 0.5f * (a + b) * (c & 1 ? -1.0f : 1.0f);
                        }
                        if (r == 5 && c == 7) v = -0.0f;
                        src[r * COLS + c] = v;
                    }
                /* Round to the source dtype first: the reference quantizes what the device sees. */
                for (int i = 0; i < ROWS * COLS; i++)
                    src[i] = fp8_decode_value(sd, fp8_encode_value(sd, src[i], FP8_OVERFLOW_CAST));
                src[6 * COLS + 818] = NAN; /* row 6: zeros, scales 1, FP8_ERR_NOT_FINITE */
                size_t sbytes;
                void *senc = encode_floats(sd, src, ROWS * COLS, &sbytes);
                fp8_buffer *sb = NULL, *db = NULL, *cb = NULL;
                fp8_buffer_create(vk, sbytes + 8, &sb);
                fp8_buffer_write(sb, 8, senc, sbytes);
                fp8_buffer_create(vk, ROWS * COLS * esz + doff, &db);
                fp8_buffer_create(vk, ROWS * nb * 4 + 4, &cb);
                const fp8i_moe_quant_args a = {
                    .rows = ROWS, .cols = COLS, .block_cols = bc, .grid = qd,
                    .src = {.buffer = sb, .offset = 8, .dtype = sd, .row_stride = COLS},
                    .dst = {.buffer = db, .offset = doff, .dtype = wide ? FP8_BF16 : qd, .row_stride = COLS},
                    .scales = {.buffer = cb, .offset = 4, .dtype = FP8_F32, .row_stride = nb}};
                CHECK_STATUS(vk->backend->moe_quantize_rows(vk, &a), FP8_OK);
                CHECK_STATUS(fp8_device_synchronize(vk), FP8_ERR_NOT_FINITE);
                uint8_t got[ROWS * COLS * 2], want[COLS];
                float gs[ROWS * MAXB], wsc[MAXB];
                fp8_buffer_read(db, doff, got, ROWS * COLS * esz);
                fp8_buffer_read(cb, 4, gs, ROWS * nb * 4);
                int mism = 0;
                for (int r = 0; r < ROWS; r++) {
                    fp8_quantize_desc q = {.rows = 1, .cols = COLS, .src_dtype = FP8_F32, .src = src + r * COLS,
                                           .dst_dtype = qd, .dst = want, .dst_bytes = COLS,
                                           .scale_layout = {.kind = FP8_SCALE_BLOCK, .dtype = FP8_F32, .block_rows = 1,
                                                            .block_cols = bc},
                                           .scale = wsc, .scale_bytes = sizeof wsc};
                    if (fp8_quantize(&q) == FP8_ERR_NOT_FINITE) {
                        memset(want, 0, COLS);
                        for (uint32_t b = 0; b < nb; b++) wsc[b] = 1.0f;
                    }
                    for (int c = 0; c < COLS; c++) {
                        if (!wide) {
                            mism += got[r * COLS + c] != want[c];
                            continue;
                        }
                        const float v = fp8_decode_value(qd, want[c]);
                        uint32_t bits;
                        uint16_t g16;
                        memcpy(&bits, &v, 4);
                        memcpy(&g16, got + 2 * ((size_t)r * COLS + c), 2);
                        mism += g16 != (uint16_t)(bits >> 16);
                    }
                    mism += memcmp(gs + r * nb, wsc, nb * 4) != 0;
                }
                CHECK(mism == 0, "quantize %s from %s%s, blocks of %u: %d codes or scales differ from fp8_quantize",
                      fp8_dtype_name(qd), fp8_dtype_name(sd), wide ? " as bf16" : "", bc, mism);
                free(senc);
                fp8_buffer_free(sb);
                fp8_buffer_free(db);
                fp8_buffer_free(cb);
            }

    /* With a plan: padding rows and rows past total_rows are left alone; a NaN row also marks the plan. */
    enum { M = 5, K = 2, E = 3, A = 4, H = 40 };
    const int32_t ids[M * K] = {0, 1, 2, 0, 1, 2, 0, 2, 1, 0};
    size_t pbytes;
    uint32_t R;
    fp8_moe_plan_size(M, K, E, A, &pbytes, &R);
    fp8_buffer *ib = NULL, *pb = NULL, *sb = NULL, *db = NULL, *cb = NULL;
    fp8_buffer_create(vk, sizeof ids, &ib);
    fp8_buffer_write(ib, 0, ids, sizeof ids);
    fp8_buffer_create(vk, pbytes, &pb);
    fp8_moe_group_desc g = {.ids = {.buffer = ib, .dtype = FP8_I32}, .plan = {.buffer = pb, .m = M, .top_k = K, .experts = E, .row_align = A}};
    CHECK_STATUS(fp8_moe_group(vk, &g), FP8_OK);
    float *h = malloc((size_t)R * H * 4);
    for (size_t i = 0; i < (size_t)R * H; i++) h[i] = test_rng_normal(&rng);
    uint32_t *pw = malloc(pbytes);
    fp8_buffer_read(pb, 0, pw, pbytes);
    fp8i_moe_plan lay;
    fp8i_moe_plan_layout(M, K, E, A, &lay);
    const uint32_t *row_token = pw + lay.row_token_at, total = pw[7];
    uint32_t nan_row = 0;
    while (row_token[nan_row] == NONE) nan_row++;
    h[(size_t)nan_row * H + 5] = INFINITY;
    sb = ref_upload(vk, FP8_F32, h, (size_t)R * H);
    fp8_buffer_create(vk, (size_t)R * H, &db);
    fp8_buffer_create(vk, (size_t)R * 4, &cb);
    uint8_t *init = malloc((size_t)R * H);
    memset(init, 0x5A, (size_t)R * H);
    fp8_buffer_write(db, 0, init, (size_t)R * H);
    fp8i_moe_quant_args a = {.rows = R, .cols = H, .block_cols = H,
                             .src = {.buffer = sb, .dtype = FP8_F32, .row_stride = H},
                             .dst = {.buffer = db, .dtype = FP8_E4M3FN, .row_stride = H},
                             .scales = {.buffer = cb, .dtype = FP8_F32, .row_stride = 1}, .plan = lay};
    a.plan.buffer = pb;
    CHECK_STATUS(vk->backend->moe_quantize_rows(vk, &a), FP8_OK);
    CHECK_STATUS(fp8_device_synchronize(vk), FP8_ERR_NOT_FINITE);
    uint8_t *got = malloc((size_t)R * H);
    fp8_buffer_read(db, 0, got, (size_t)R * H);
    int untouched = 1, written = 1;
    for (uint32_t r = 0; r < R; r++) {
        const int skip = r >= total || row_token[r] == NONE;
        for (uint32_t c = 0; c < H; c++) {
            if (skip) untouched &= got[(size_t)r * H + c] == 0x5A;
            else if (r == nan_row) written &= got[(size_t)r * H + c] == 0;
        }
    }
    CHECK(untouched, "quantize with a plan wrote padding or unused rows");
    CHECK(written, "the non-finite row is not zeros");
    int32_t status;
    fp8_buffer_read(pb, 4, &status, 4);
    CHECK(status == FP8_ERR_NOT_FINITE, "plan status %d after a non-finite row", status);
    free(h); free(pw); free(init); free(got);
    fp8_buffer_free(ib); fp8_buffer_free(pb); fp8_buffer_free(sb); fp8_buffer_free(db); fp8_buffer_free(cb);
}

/* ------------------------------------------------------------------------------------------------
 * Grouping across many chunks, and routing at the limits: the device against the CPU, word for word.
 * ---------------------------------------------------------------------------------------------- */
static void group_case(const char *name, uint32_t m, uint32_t k, uint32_t e, uint32_t a, int bad, test_rng *rng)
{
    int32_t *ids = malloc((size_t)m * k * 4);
    for (size_t i = 0; i < (size_t)m * k; i++) {
        ids[i] = (int32_t)(test_rng_next(rng) % (e < 7 ? e : e / 3 + 5)); /* skewed towards low ids */
        if (bad && i % 97 == 3) ids[i] = i % 2 ? -1 : (int32_t)e;
    }
    size_t pbytes;
    fp8_moe_plan_size(m, k, e, a, &pbytes, NULL);
    dual ib = dual_make((size_t)m * k * 4, ids), pb = dual_make(pbytes, NULL);
    fp8i_moe_plan lay;
    fp8i_moe_plan_layout(m, k, e, a, &lay);
    uint32_t *wv = malloc(pbytes), *wc = malloc(pbytes);
    for (int s = 0; s < 2; s++) {
        fp8_moe_group_desc g = {.ids = {.buffer = side(&ib, s), .dtype = FP8_I32},
                                .plan = {.buffer = side(&pb, s), .m = m, .top_k = k, .experts = e, .row_align = a}};
        fp8_status st = fp8_moe_group(s ? vk : cpu, &g);
        if (s) st = ref_data_status(vk, st);
        CHECK_STATUS(st, bad ? FP8_ERR_EXPERT_ID : FP8_OK);
    }
    fp8_buffer_read(pb.v, 0, wv, pbytes);
    fp8_buffer_read(pb.c, 0, wc, pbytes);
    size_t diff = 0;
    for (size_t i = 0; i < lay.workspace_at; i++) diff += wv[i] != wc[i];
    CHECK(diff == 0, "%s: %zu plan words differ from the CPU's", name, diff);
    printf("%-44s S=%u chunks=%u total rows %u, %u active\n", name, m * k, (m * k + 255) / 256, wc[7], wc[8]);
    free(ids); free(wv); free(wc);
    dual_free(&ib); dual_free(&pb);
}

static void test_group_route(void)
{
    test_rng rng = {0x4242};
    group_case("group 2400 slots, E 16, align 1", 400, 6, 16, 1, 0, &rng);
    group_case("group 2400 slots, E 16, align 64", 400, 6, 16, 64, 0, &rng);
    group_case("group 4200 slots, E 4096, align 16, bad ids", 700, 6, 4096, 16, 1, &rng);
    group_case("group 1000 slots, E 5, align 8", 500, 2, 5, 8, 0, &rng);
    group_case("group 240 slots (one pass), E 4096, bad ids", 30, 8, 4096, 64, 1, &rng);
    group_case("group 256 slots (one pass), E 3, align 4", 128, 2, 3, 4, 0, &rng);

    /* Routing at E = 4096, k = 64: softmax, and sigmoid + bias with 64 groups keeping 8. */
    enum { M = 3, E = 4096, K = 64 };
    float *l = malloc((size_t)M * E * 4), *bias = malloc(E * 4);
    for (size_t i = 0; i < (size_t)M * E; i++) l[i] = 3.0f * test_rng_normal(&rng);
    for (int i = 0; i < E; i++) bias[i] = 0.1f * test_rng_normal(&rng);
    dual lb = dual_make((size_t)M * E * 4, l), bb = dual_make(E * 4, bias);
    dual ib = dual_make(M * K * 4, NULL), wb = dual_make(M * K * 4, NULL);
    for (int mode = 0; mode < 2; mode++) {
        int32_t iv[M * K], ic[M * K];
        float fv[M * K], fc[M * K];
        for (int s = 0; s < 2; s++) {
            fp8_moe_route_desc d = {.m = M, .experts = E, .top_k = K, .logits = {.buffer = side(&lb, s), .dtype = FP8_F32},
                                    .ids = {.buffer = side(&ib, s), .dtype = FP8_I32},
                                    .weights = {.buffer = side(&wb, s), .dtype = FP8_F32}};
            d.router.renormalize = 1;
            if (mode) {
                d.router.scoring = FP8_MOE_SCORE_SIGMOID;
                d.router.bias = (fp8_operand){.buffer = side(&bb, s), .dtype = FP8_F32};
                d.router.n_group = 64;
                d.router.topk_group = 8;
                d.router.routed_scaling_factor = 2.5f;
            }
            CHECK_STATUS(fp8_moe_route(s ? vk : cpu, &d), FP8_OK);
            fp8_buffer_read(side(&ib, s), 0, s ? iv : ic, sizeof iv);
            fp8_buffer_read(side(&wb, s), 0, s ? fv : fc, sizeof fv);
        }
        CHECK(memcmp(iv, ic, sizeof iv) == 0, "route E=4096 k=64 (%s): ids differ", mode ? "grouped sigmoid" : "softmax");
        double worst = 0;
        for (int i = 0; i < M * K; i++) {
            const double rel = fabs((double)fv[i] - fc[i]) / (fabs(fc[i]) + 1e-30);
            worst = rel > worst ? rel : worst;
        }
        CHECK(worst < 1e-6, "route E=4096 k=64: weights off by %.3g", worst);
    }
    CHECK_STATUS(fp8_device_synchronize(vk), FP8_OK);
    free(l); free(bias);
    dual_free(&lb); dual_free(&bb); dual_free(&ib); dual_free(&wb);
}

/* ------------------------------------------------------------------------------------------------
 * The error word.
 * ---------------------------------------------------------------------------------------------- */
static void test_error_word(void)
{
    enum { M = 4, E = 8, K = 2 };
    float l[M * E];
    for (int i = 0; i < M * E; i++) l[i] = (float)(i % 5);
    l[E + 3] = NAN;
    fp8_buffer *lb = ref_upload(vk, FP8_F32, l, M * E), *ib = NULL, *wb = NULL, *pb = NULL, *bad_ids = NULL;
    fp8_buffer_create(vk, M * K * 4, &ib);
    fp8_buffer_create(vk, M * K * 4, &wb);
    const fp8_moe_route_desc rd = {.m = M, .experts = E, .top_k = K, .logits = {.buffer = lb, .dtype = FP8_F32},
                                   .ids = {.buffer = ib, .dtype = FP8_I32}, .weights = {.buffer = wb, .dtype = FP8_F32}};
    /* Reported by the next synchronize, once. */
    CHECK_STATUS(fp8_moe_route(vk, &rd), FP8_OK);
    CHECK_STATUS(fp8_device_synchronize(vk), FP8_ERR_NOT_FINITE);
    CHECK_STATUS(fp8_device_synchronize(vk), FP8_OK);
    /* A read in between waits for the work but leaves the error to synchronize. */
    CHECK_STATUS(fp8_moe_route(vk, &rd), FP8_OK);
    int32_t tmp[M * K];
    CHECK_STATUS(fp8_buffer_read(ib, 0, tmp, sizeof tmp), FP8_OK);
    CHECK(tmp[K] == 0 && tmp[K + 1] == 1, "the non-finite token got ids %d %d", tmp[K], tmp[K + 1]);
    CHECK_STATUS(fp8_device_synchronize(vk), FP8_ERR_NOT_FINITE);
    /* The first error wins: bad ids, then non-finite logits, give FP8_ERR_EXPERT_ID. */
    const int32_t bad[M * K] = {0, 1, 2, 9, 3, 4, 5, 6};
    fp8_buffer_create(vk, sizeof bad, &bad_ids);
    fp8_buffer_write(bad_ids, 0, bad, sizeof bad);
    size_t pbytes;
    uint32_t R;
    fp8_moe_plan_size(M, K, E, 1, &pbytes, &R);
    fp8_buffer_create(vk, pbytes, &pb);
    const fp8_moe_plan plan = {.buffer = pb, .m = M, .top_k = K, .experts = E, .row_align = 1};
    fp8_moe_group_desc gd = {.ids = {.buffer = bad_ids, .dtype = FP8_I32}, .plan = plan};
    CHECK_STATUS(fp8_moe_group(vk, &gd), FP8_OK);
    CHECK_STATUS(fp8_moe_route(vk, &rd), FP8_OK);
    CHECK_STATUS(fp8_device_synchronize(vk), FP8_ERR_EXPERT_ID);
    CHECK_STATUS(fp8_device_synchronize(vk), FP8_OK);

    fp8_buffer *bufs[] = {lb, ib, wb, pb, bad_ids};
    for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++) fp8_buffer_free(bufs[i]);
}

/* Damaged plans: the kernels follow no bad index, write inside their outputs only, and report
 * FP8_ERR_INVALID_ARGUMENT (or nothing, where the damage leaves every index in range). Both GEMM kernels. */
static void test_damaged_plans(uint32_t align)
{
    enum { M = 6, E = 8, K = 2, H = 32 };
    test_rng rng = {0xc0ffee + align};
    size_t pbytes;
    uint32_t R;
    fp8_moe_plan_size(M, K, E, align, &pbytes, &R);
    fp8_buffer *pb = NULL, *ib = NULL, *wb = NULL;
    fp8_buffer_create(vk, pbytes, &pb);
    const fp8_moe_plan plan = {.buffer = pb, .m = M, .top_k = K, .experts = E, .row_align = align};
    const int32_t good[M * K] = {0, 1, 2, 3, 4, 5, 6, 7, 1, 2, 1, 3};
    const float wts[M * K] = {0.5f, 0.25f, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1};
    fp8_buffer_create(vk, sizeof good, &ib);
    fp8_buffer_write(ib, 0, good, sizeof good);
    wb = ref_upload(vk, FP8_F32, wts, M * K);
    fp8_moe_group_desc gd = {.ids = {.buffer = ib, .dtype = FP8_I32}, .plan = plan};
    CHECK_STATUS(fp8_moe_group(vk, &gd), FP8_OK);
    ref_experts w;
    CHECK_STATUS(ref_experts_make(vk, &rng, E, 2 * H, H, FP8_E4M3FN, (fp8_scale_layout){.kind = FP8_SCALE_ROW, .dtype = FP8_F32},
                                  0.2f, 0, &w), FP8_OK);
    float x[M * H];
    for (int i = 0; i < M * H; i++) x[i] = test_rng_normal(&rng);
    fp8_buffer *xb = ref_upload(vk, FP8_F32, x, M * H), *yb = NULL, *cb = NULL;
    const size_t guard = 256, ybytes = (size_t)R * H * 4, cbytes = (size_t)M * H * 4;
    fp8_buffer_create(vk, ybytes + 2 * guard, &yb);
    fp8_buffer_create(vk, cbytes + 2 * guard, &cb);
    uint8_t *fill = malloc(ybytes + 2 * guard);
    memset(fill, 0x77, ybytes + 2 * guard);
    fp8_buffer_write(yb, 0, fill, ybytes + 2 * guard);
    fp8_buffer_write(cb, 0, fill, cbytes + 2 * guard);
    uint32_t *pw = malloc(pbytes), *dmg = malloc(pbytes);
    fp8_buffer_read(pb, 0, pw, pbytes);
    fp8i_moe_plan lay;
    fp8i_moe_plan_layout(M, K, E, align, &lay);
    const fp8_moe_gemm_desc g1 = {.plan = plan, .n = 2 * H, .k = H, .weights = w.w, .x = {.buffer = xb, .dtype = FP8_F32},
                                  .x_gathered = 1, .activation = FP8_MOE_ACT_SWIGLU,
                                  .y = {.buffer = yb, .offset = guard, .dtype = FP8_F32}};
    const fp8_moe_combine_desc cd = {.plan = plan, .hidden = H, .rows = {.buffer = yb, .offset = guard, .dtype = FP8_F32},
                                     .weights = {.buffer = wb, .dtype = FP8_F32},
                                     .y = {.buffer = cb, .offset = guard, .dtype = FP8_F32}};
    CHECK_STATUS(fp8_moe_grouped_gemm(vk, &g1), FP8_OK);
    CHECK_STATUS(fp8_device_synchronize(vk), FP8_OK);
    int reported = 0, clean = 0;
    for (int i = 0; i < 100; i++) {
        memcpy(dmg, pw, pbytes);
        if (i == 0) memset(dmg, 0, pbytes); /* never grouped */
        const int hits = 1 + (int)(test_rng_next(&rng) % 3);
        for (int j = 0; i && j < hits; j++) {
            const size_t at = 2 + test_rng_next(&rng) % (lay.workspace_at - 2);
            const uint64_t r = test_rng_next(&rng);
            dmg[at] = (r & 3) == 0 ? NONE : (r & 3) == 1 ? (uint32_t)(r >> 8) : (uint32_t)((r >> 8) % (R + 3));
        }
        fp8_buffer_write(pb, 0, dmg, pbytes);
        CHECK_STATUS(fp8_moe_grouped_gemm(vk, &g1), FP8_OK);
        CHECK_STATUS(fp8_moe_combine(vk, &cd), FP8_OK);
        const fp8_status st = fp8_device_synchronize(vk);
        CHECK(st == FP8_OK || st == FP8_ERR_INVALID_ARGUMENT, "damaged plan %d: synchronize gave %s", i, fp8_status_name(st));
        reported += st == FP8_ERR_INVALID_ARGUMENT;
        clean += st == FP8_OK;
    }
    CHECK(reported > 0 && clean > 0, "damaged plans: %d reported, %d clean", reported, clean);
    uint8_t *after = malloc(ybytes + 2 * guard);
    fp8_buffer_read(yb, 0, after, ybytes + 2 * guard);
    CHECK(memcmp(after, fill, guard) == 0 && memcmp(after + guard + ybytes, fill, guard) == 0,
          "a damaged plan made the GEMM write outside its rows");
    fp8_buffer_read(cb, 0, after, cbytes + 2 * guard);
    CHECK(memcmp(after, fill, guard) == 0 && memcmp(after + guard + cbytes, fill, guard) == 0,
          "a damaged plan made combine write outside its output");
    printf("damaged plans, row_align %3u: %d reported FP8_ERR_INVALID_ARGUMENT, %d ran clean\n", align, reported, clean);
    free(fill); free(pw); free(dmg); free(after);
    ref_experts_free(&w);
    fp8_buffer *bufs[] = {pb, ib, wb, xb, yb, cb};
    for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++) fp8_buffer_free(bufs[i]);
}

/* ------------------------------------------------------------------------------------------------
 * Expert weights larger than one binding addresses: the grouped GEMM binds them a window of experts at a
 * time (experts on both sides of a window edge, and the last expert, are routed to); a plain GEMM refuses
 * the same buffer rather than address part of it.
 * ---------------------------------------------------------------------------------------------- */
static void test_windowed_weights(void)
{
    const uint64_t range = fp8i_vk_dev(vk)->max_buffer_bytes;
    if (range > (512u << 20)) {
        printf("windowed weights: skipped, this device's binding range (%llu bytes) is too large to exceed here "
               "(FP8_VK_MAX_BINDING_BYTES=134217728 lowers it)\n",
               (unsigned long long)range);
        return;
    }
    /* K stays at 1024: from K = 2048 on, the plain-FMA twin of the cooperative-matrix kernel gives sums on
     * lavapipe that lose about everything past the first 1500 or so of K, also in the library before the
     * windows existed. llvmpipe stops a shader's loops after 65535 iterations counted over all of them
     * (Mesa's LP_MAX_TGSI_LOOP_ITERATIONS), and the twin's invocations run (outputs each) x K inner
     * iterations: 32 x 2048 reaches it. Shapes with 64 outputs each failed here at K = 1024 and passed at 512. */
    enum { N = 256, K = 1024, M = 5, TOPK = 4 };
    const size_t one = (size_t)N * K;                       /* E4M3FN, one byte each */
    const uint32_t E = (uint32_t)(range / one) + 6;         /* a few experts past the first window */
    const size_t wbytes = one * E;
    uint8_t *w = malloc(wbytes);
    test_rng rng = {0x5eed};
    for (size_t i = 0; i < wbytes; i++) {
        uint8_t b = (uint8_t)test_rng_next(&rng);
        w[i] = (b & 0x7F) == 0x7F ? 0 : b; /* no NaN codes */
    }
    float *sc = malloc((size_t)E * N * 4);
    for (size_t i = 0; i < (size_t)E * N; i++) sc[i] = test_rng_uniform(&rng, 0.001f, 0.002f);
    dual wb = dual_make(wbytes, w), sb = dual_make((size_t)E * N * 4, sc);
    CHECK(fp8_buffer_size(wb.v) > range, "windowed weights: a %zu-byte buffer does not exceed the range", wbytes);
    /* Per token: the last expert, the two around the first window edge, and one more. */
    const uint32_t edge = (uint32_t)(range / one);
    int32_t ids[M * TOPK];
    for (uint32_t t = 0; t < M; t++) {
        const int32_t pick[TOPK] = {(int32_t)(E - 1), (int32_t)(edge - 1 - t % 2), (int32_t)(edge + t % 3),
                                    (int32_t)(t * 7 % (edge - 3))};
        memcpy(ids + t * TOPK, pick, sizeof pick);
    }
    float x[M * K];
    for (int i = 0; i < M * K; i++) x[i] = test_rng_normal(&rng);
    dual ib = dual_make(sizeof ids, ids), xb = dual_make(sizeof x, x);
    /* The same experts over two buffers (w_buffers): the first E - 3 from the big buffer (still windows), the
     * last three from a small buffer of their own (one plain dispatch). */
    enum { TAIL = 3 };
    fp8_buffer *tail = NULL;
    CHECK_STATUS(fp8_buffer_create(vk, TAIL * one, &tail), FP8_OK);
    CHECK_STATUS(fp8_buffer_write(tail, 0, w + (size_t)(E - TAIL) * one, TAIL * one), FP8_OK);
    fp8_buffer *const parts[2] = {wb.v, tail};
    const uint32_t aligns[] = {1, 16, 64};
    for (size_t a = 0; a < sizeof aligns / sizeof aligns[0]; a++) {
        size_t pbytes;
        uint32_t R;
        CHECK_STATUS(fp8_moe_plan_size(M, TOPK, E, aligns[a], &pbytes, &R), FP8_OK);
        dual pb = dual_make(pbytes, NULL), yb = dual_make((size_t)R * N * 4, NULL);
        float *yv = malloc((size_t)R * N * 4), *yc = malloc((size_t)R * N * 4);
        for (int s = 0; s < 2; s++) {
            const fp8_moe_plan plan = {.buffer = side(&pb, s), .m = M, .top_k = TOPK, .experts = E, .row_align = aligns[a]};
            fp8_moe_group_desc g = {.ids = {.buffer = side(&ib, s), .dtype = FP8_I32}, .plan = plan};
            CHECK_STATUS(fp8_moe_group(s ? vk : cpu, &g), FP8_OK);
            fp8_moe_gemm_desc d = {.plan = plan, .n = N, .k = K, .activation = FP8_MOE_ACT_NONE, .x_gathered = 1};
            d.weights.w = (fp8_operand){.buffer = side(&wb, s), .dtype = FP8_E4M3FN};
            d.weights.scales = (fp8_scales){.layout = ROW, .buffer = side(&sb, s)};
            d.x = (fp8_operand){.buffer = side(&xb, s), .dtype = FP8_F32};
            d.y = (fp8_operand){.buffer = side(&yb, s), .dtype = FP8_F32};
            CHECK_STATUS(fp8_moe_grouped_gemm(s ? vk : cpu, &d), FP8_OK);
        }
        CHECK_STATUS(fp8_device_synchronize(vk), FP8_OK);
        fp8_buffer_read(yb.v, 0, yv, (size_t)R * N * 4);
        fp8_buffer_read(yb.c, 0, yc, (size_t)R * N * 4);
        uint32_t total = 0;
        fp8_buffer_read(pb.c, 7 * 4, &total, 4); /* plan header word 7: total_rows */
        char name[64];
        snprintf(name, sizeof name, "windowed weights, row_align %u", aligns[a]);
        double worst;
        uint32_t compared;
        const double frob = compare_y(name, yv, yc, R, N, total, &worst, &compared);
        /* fp16 operands on matrix units (the 64-row tiles there), f32 sums elsewhere. */
        const double tol = aligns[a] == 64 && coopmat_expected() ? 2e-3 : 1e-5;
        CHECK(frob <= tol && compared > 0, "%s: relative error %.3g above %.3g (%u elements)", name, frob, tol, compared);
        printf("windowed weights (%u experts, %zu bytes, range %llu), row_align %-3u frob %.3g; same over two "
               "buffers\n", E, wbytes, (unsigned long long)range, aligns[a], frob);
        {
            const fp8_moe_plan plan = {.buffer = pb.v, .m = M, .top_k = TOPK, .experts = E, .row_align = aligns[a]};
            fp8_moe_gemm_desc d = {.plan = plan, .n = N, .k = K, .activation = FP8_MOE_ACT_NONE, .x_gathered = 1};
            d.weights.w = (fp8_operand){.buffer = NULL, .dtype = FP8_E4M3FN};
            d.weights.experts_per_buffer = E - TAIL;
            d.weights.w_buffer_count = 2;
            d.weights.w_buffers = parts;
            d.weights.scales = (fp8_scales){.layout = ROW, .buffer = sb.v};
            d.x = (fp8_operand){.buffer = xb.v, .dtype = FP8_F32};
            d.y = (fp8_operand){.buffer = yb.v, .dtype = FP8_F32};
            CHECK_STATUS(fp8_moe_grouped_gemm(vk, &d), FP8_OK);
            CHECK_STATUS(fp8_device_synchronize(vk), FP8_OK);
            float *ys = malloc((size_t)R * N * 4);
            fp8_buffer_read(yb.v, 0, ys, (size_t)R * N * 4);
            CHECK(memcmp(ys, yv, (size_t)R * N * 4) == 0, "%s: experts over two buffers differ from one", name);
            free(ys);
        }
        free(yv); free(yc);
        dual_free(&pb);
        dual_free(&yb);
    }
    /* A plain GEMM would bind the whole buffer: refused. */
    fp8_buffer *y = NULL;
    CHECK_STATUS(fp8_buffer_create(vk, N * 4, &y), FP8_OK);
    const fp8_gemm_desc gd = {.m = 1, .n = N, .k = K, .w = {.buffer = wb.v, .dtype = FP8_E4M3FN},
                              .x = {.buffer = xb.v, .dtype = FP8_F32}, .y = {.buffer = y, .dtype = FP8_F32}};
    CHECK_STATUS(fp8_gemm(vk, &gd), FP8_ERR_TOO_LARGE);
    fp8_buffer_free(y);
    fp8_buffer_free(tail);
    dual_free(&wb); dual_free(&sb); dual_free(&ib); dual_free(&xb);
    free(w); free(sc);
}

int main(void)
{
    fp8_context_options opt = {.log = NULL}; /* the damaged plans log errors on purpose */
    CHECK_STATUS(fp8_context_create(&opt, &ctx), FP8_OK);
    uint32_t idx;
    fp8_device_filter f = {.backend = FP8_BACKEND_VULKAN};
    if (fp8_context_find_device(ctx, &f, &idx) != FP8_OK || fp8_device_open(ctx, idx, &vk) != FP8_OK)
        test_skip("no Vulkan device");
    f.backend = FP8_BACKEND_CPU;
    CHECK_STATUS(fp8_context_find_device(ctx, &f, &idx), FP8_OK);
    CHECK_STATUS(fp8_device_open(ctx, idx, &cpu), FP8_OK);
    test_error_word();
    test_damaged_plans(1);
    test_damaged_plans(16);
    test_quantize();
    test_group_route();
    test_gemm();
    test_windowed_weights();
    fp8_device_close(cpu);
    ref_close_device(vk);
    fp8_context_destroy(ctx);
    return test_finish("moe_vk");
}
