/* The OpenCL MoE kernels against the CPU slots on the same bytes: the grouped GEMM over every weight dtype,
 * scale layout, activation dtype, epilogue, bias and plan shape, on both kernels (GEMV and tiles, forced
 * through FP8_CL_MOE_KERNEL); plans word for word; activation quantization bit for bit (every FP8 dtype,
 * arbitrary floats through a unit scale); the error word through fp8_device_synchronize; corrupt and fuzzed
 * plans never write outside their operands.
 *
 * Environment: FP8_TEST_CL_DEVICE=<name part> picks the OpenCL device (default: the first one). */
#include "test_util.h"

#include "backend/moe.h"
#include "opencl/cl_internal.h"

#include <math.h>
#include <string.h>

#define NONE FP8_MOE_NONE
#define SENTINEL 0x5A

static fp8_context *g_ctx;
static fp8_device *g_cpu;
static fp8_device *g_cl[3]; /* kernels chosen by the plan, GEMV forced, tiles forced */
static const char *const g_cl_name[3] = {"auto", "gemv", "tiled"};

static size_t storage(fp8_dtype dt, size_t elems)
{
    size_t b = 0;
    fp8_dtype_storage_size(dt, elems, &b);
    return b;
}

/* The same bytes on the CPU device and on an OpenCL device. */
typedef struct pair {
    fp8_buffer *c, *d;
    size_t size;
} pair;

static pair pair_make(fp8_device *cl, const void *data, size_t size)
{
    pair p = {NULL, NULL, size ? size : 4};
    CHECK_STATUS(fp8_buffer_create(g_cpu, p.size, &p.c), FP8_OK);
    CHECK_STATUS(fp8_buffer_create(cl, p.size, &p.d), FP8_OK);
    if (data && size) {
        fp8_buffer_write(p.c, 0, data, size);
        fp8_buffer_write(p.d, 0, data, size);
    }
    return p;
}

static pair pair_fill(fp8_device *cl, size_t size, uint8_t byte)
{
    uint8_t *tmp = malloc(size ? size : 4);
    memset(tmp, byte, size ? size : 4);
    pair p = pair_make(cl, tmp, size);
    free(tmp);
    return p;
}

static void pair_free(pair *p)
{
    fp8_buffer_free(p->c);
    fp8_buffer_free(p->d);
    p->c = p->d = NULL;
}

static fp8_buffer *side(const pair *p, int dev) { return dev ? p->d : p->c; }

/* A valid code of an 8-bit format (or two E2M1 nibbles) near amp * normal. */
static uint8_t rand_code(test_rng *r, fp8_dtype dt, float amp)
{
    if (dt == FP8_E2M1) {
        const uint32_t lo = fp8_encode_value(dt, amp * test_rng_normal(r), FP8_OVERFLOW_SATURATE);
        const uint32_t hi = fp8_encode_value(dt, amp * test_rng_normal(r), FP8_OVERFLOW_SATURATE);
        return (uint8_t)((lo & 0xf) | (hi & 0xf) << 4);
    }
    return (uint8_t)fp8_encode_value(dt, amp * test_rng_normal(r), FP8_OVERFLOW_SATURATE);
}

/* Scale tensor bytes of `count` scales of dtype dt around 1 (F32 in [0.5, 2), E8M0 2^-2..2^2, E4M3 0.5..2). */
static void *rand_scales(test_rng *r, fp8_dtype dt, size_t count, size_t *bytes)
{
    const size_t es = dt == FP8_F32 ? 4 : 1;
    uint8_t *s = malloc(count * es + 4);
    for (size_t i = 0; i < count; i++) {
        if (dt == FP8_F32) {
            const float v = test_rng_uniform(r, 0.5f, 2.0f);
            memcpy(s + 4 * i, &v, 4);
        } else if (dt == FP8_E8M0) {
            s[i] = (uint8_t)(125 + test_rng_next(r) % 5);
        } else {
            s[i] = (uint8_t)fp8_encode_value(dt, test_rng_uniform(r, 0.5f, 2.0f), FP8_OVERFLOW_SATURATE);
        }
    }
    *bytes = count * es;
    return s;
}

/* ------------------------------------------------------------------------------------------------
 * Grouped GEMM: device against CPU.
 * ---------------------------------------------------------------------------------------------- */
typedef struct gcase {
    const char *name;
    uint32_t m, top_k, e, n, k, align; /* align 0: dense (no plan) */
    fp8_dtype wdt;
    fp8_scale_layout wl;
    int tensor_scales;
    fp8_dtype xdt;
    fp8_scale_layout xl;               /* FP8 activations */
    int gathered;
    fp8_dtype bdt, ydt;                /* bdt 0: no bias */
    fp8_moe_activation act;
    int skewed;                        /* every token to experts 1 and E-2 */
    size_t w_gap, w_off, x_off;        /* bytes */
    int specials;                      /* a few NaN (and E5M2 Inf) weight codes in every expert */
} gcase;

#define L_NONE {FP8_SCALE_NONE, 0, 0, 0}
#define L_TENSOR {FP8_SCALE_TENSOR, FP8_F32, 0, 0}
#define L_ROW {FP8_SCALE_ROW, FP8_F32, 0, 0}
#define L_COL {FP8_SCALE_COL, FP8_F32, 0, 0}
#define L_BLOCK(dt, r, c) {FP8_SCALE_BLOCK, dt, r, c}

static const gcase gcases[] = {
    {"e4m3 row, f32 x, swiglu, decode", 9, 2, 6, 48, 80, 1, FP8_E4M3FN, L_ROW, 0, FP8_F32, L_NONE, 1, FP8_F32, FP8_F32,
     FP8_MOE_ACT_SWIGLU, 0, 0, 0, 0, 0},
    {"e4m3 128x128, bf16 x, geglu, A32", 20, 3, 4, 64, 160, 32, FP8_E4M3FN, L_BLOCK(FP8_F32, 128, 128), 0, FP8_BF16,
     L_NONE, 1, FP8_BF16, FP8_F16, FP8_MOE_ACT_GEGLU, 0, 16, 0, 0, 0},
    {"e5m2 col (generic), silu, odd N", 7, 2, 5, 47, 70, 4, FP8_E5M2, L_COL, 0, FP8_F16, L_NONE, 1, 0, FP8_F32,
     FP8_MOE_ACT_SILU, 0, 0, 3, 4, 0},
    {"e4m3fnuz tensor, gelu_tanh", 6, 2, 4, 40, 64, 1, FP8_E4M3FNUZ, L_TENSOR, 0, FP8_F32, L_NONE, 1, FP8_F16, FP8_BF16,
     FP8_MOE_ACT_GELU_TANH, 0, 0, 0, 0, 0},
    {"e5m2fnuz none, plan-order x", 8, 2, 5, 32, 48, 8, FP8_E5M2FNUZ, L_NONE, 0, FP8_F32, L_NONE, 0, 0, FP8_F32,
     FP8_MOE_ACT_NONE, 0, 0, 0, 0, 0},
    {"mxfp4, geglu_tanh, strided", 6, 2, 6, 64, 96, 1, FP8_E2M1, L_BLOCK(FP8_E8M0, 1, 32), 0, FP8_F32, L_NONE, 1,
     FP8_F32, FP8_F32, FP8_MOE_ACT_GEGLU_TANH, 0, 32, 0, 0, 0},
    {"nvfp4 + expert tensor scales", 7, 2, 4, 48, 64, 16, FP8_E2M1, L_BLOCK(FP8_E4M3FN, 1, 16), 1, FP8_BF16, L_NONE, 1,
     0, FP8_F32, FP8_MOE_ACT_SWIGLU, 0, 0, 0, 0, 0},
    {"w8a8 e4m3 x per-token", 8, 2, 5, 40, 256, 1, FP8_E4M3FN, L_BLOCK(FP8_F32, 128, 128), 0, FP8_E4M3FN, L_ROW, 1,
     FP8_F32, FP8_F32, FP8_MOE_ACT_SWIGLU, 0, 0, 0, 0, 0},
    {"w8a8 1x32, plan-order x, gelu", 7, 2, 4, 32, 96, 4, FP8_E4M3FN, L_ROW, 0, FP8_E4M3FN, L_BLOCK(FP8_F32, 1, 32), 0,
     0, FP8_F32, FP8_MOE_ACT_GELU, 0, 0, 0, 0, 0},
    {"w8a8 e5m2 x tensor, none", 5, 3, 6, 36, 50, 1, FP8_E4M3FN, L_ROW, 0, FP8_E5M2, L_TENSOR, 1, FP8_BF16, FP8_F32,
     FP8_MOE_ACT_NONE, 0, 0, 0, 0, 0},
    {"generic 1x8 w and x blocks", 5, 2, 4, 24, 40, 2, FP8_E4M3FN, L_BLOCK(FP8_F32, 1, 8), 0, FP8_E4M3FN,
     L_BLOCK(FP8_F32, 1, 8), 1, 0, FP8_F32, FP8_MOE_ACT_SWIGLU, 0, 0, 0, 0, 0},
    {"skewed decode: 24 rows per expert", 24, 2, 6, 32, 48, 1, FP8_E4M3FN, L_ROW, 0, FP8_F32, L_NONE, 1, FP8_F32,
     FP8_F32, FP8_MOE_ACT_SWIGLU, 1, 0, 0, 0, 0},
    {"A64: two 32-row blocks per tile", 40, 2, 3, 40, 48, 64, FP8_E4M3FN, L_ROW, 0, FP8_F32, L_NONE, 1, FP8_F32,
     FP8_F32, FP8_MOE_ACT_SWIGLU, 1, 0, 0, 0, 0},
    {"dense m5, gelu, bias", 5, 1, 1, 40, 72, 0, FP8_E4M3FN, L_ROW, 0, FP8_F32, L_NONE, 1, FP8_F32, FP8_F32,
     FP8_MOE_ACT_GELU, 0, 0, 0, 0, 0},
    {"dense m70 (tiles), swiglu", 70, 1, 1, 48, 64, 0, FP8_E5M2, L_BLOCK(FP8_F32, 32, 32), 0, FP8_F16, L_NONE, 1,
     FP8_F16, FP8_F32, FP8_MOE_ACT_SWIGLU, 0, 0, 0, 0, 0},
    /* Codes the decode kernel's double sums cannot build from their bits (NaN, Inf) must come out as the CPU's. */
    {"e4m3 NaN codes, k16 scales, decode", 6, 2, 4, 32, 96, 1, FP8_E4M3FN, L_BLOCK(FP8_F32, 16, 32), 0, FP8_F32, L_NONE,
     1, 0, FP8_F32, FP8_MOE_ACT_SWIGLU, 0, 0, 0, 0, 1},
    {"e5m2 Inf and NaN codes, w8a8, decode", 5, 2, 4, 24, 80, 1, FP8_E5M2, L_ROW, 0, FP8_E4M3FN, L_ROW, 1, 0, FP8_F32,
     FP8_MOE_ACT_NONE, 0, 0, 0, 0, 1},
    {"e4m3fnuz NaN codes, one token", 1, 4, 6, 32, 64, 1, FP8_E4M3FNUZ, L_ROW, 0, FP8_BF16, L_NONE, 1, 0, FP8_F32,
     FP8_MOE_ACT_GEGLU, 0, 0, 0, 0, 1},
};

/* Host plan words of a device, from the front of the plan up to its workspace. */
static void read_words(fp8_buffer *b, size_t words, uint32_t *out) { fp8_buffer_read(b, 0, out, words * 4); }

static void random_ids(test_rng *r, const gcase *c, int32_t *ids)
{
    for (uint32_t t = 0; t < c->m; t++)
        for (uint32_t j = 0; j < c->top_k; j++) {
            if (c->skewed) {
                ids[t * c->top_k + j] = j == 0 ? 1 : (int32_t)c->e - 2;
                continue;
            }
            int32_t id;
            int dup;
            do {
                id = (int32_t)(test_rng_next(r) % c->e);
                dup = 0;
                for (uint32_t i = 0; i < j; i++) dup |= ids[t * c->top_k + i] == id;
            } while (dup);
            ids[t * c->top_k + j] = id;
        }
}

static float to_float(fp8_dtype dt, const uint8_t *base, size_t i)
{
    float f = 0;
    uint8_t tmp[4];
    memcpy(tmp, base + storage(dt, i), storage(dt, 1));
    fp8_decode_array(dt, tmp, storage(dt, 1), 1, &f);
    return f;
}

/* Relative to the larger of |want| and a floor of 1e-3 of the output's largest magnitude: results that cancel
 * to nearly nothing are judged against the values they came from. Allowed: 4 ulps of the output dtype (the
 * device sums in float-float, the CPU in double; both round once), more for per-element (GENERIC) scales,
 * which the device rounds into each weight. */
static void run_gemm_case(const gcase *c, int which)
{
    fp8_device *cl = g_cl[which];
    test_rng rng = {0x51ed + c->m * 131 + c->n * 7 + c->k + (uint64_t)c->wdt * 1000 + (uint64_t)c->act * 17};
    const int dense = c->align == 0;
    const int gated = c->act == FP8_MOE_ACT_SWIGLU || c->act == FP8_MOE_ACT_GEGLU || c->act == FP8_MOE_ACT_GEGLU_TANH;
    const uint32_t n_out = gated ? c->n / 2 : c->n;
    const uint32_t m = c->m, e = c->e;

    /* Plan on both devices from the same ids; the words before the workspace must agree. */
    pair plan = {0};
    uint32_t rows = m, total = m;
    fp8i_moe_plan layout = {0};
    fp8_moe_plan pd = {.m = m, .top_k = dense ? 1 : c->top_k, .experts = e, .row_align = dense ? 1 : c->align};
    uint32_t *wc = NULL;
    if (!dense) {
        int32_t *ids = malloc((size_t)m * c->top_k * 4);
        random_ids(&rng, c, ids);
        CHECK_STATUS(fp8i_moe_plan_layout(m, c->top_k, e, c->align, &layout), FP8_OK);
        rows = layout.rows;
        pair ib = pair_make(cl, ids, (size_t)m * c->top_k * 4);
        plan = pair_fill(cl, layout.words * 4, 0xA5);
        for (int dv = 0; dv < 2; dv++) {
            fp8_moe_plan p = pd;
            p.buffer = side(&plan, dv);
            fp8_moe_group_desc gd = {.ids = {.buffer = side(&ib, dv), .dtype = FP8_I32}, .plan = p};
            CHECK_STATUS(fp8_moe_group(dv ? cl : g_cpu, &gd), FP8_OK);
        }
        CHECK_STATUS(fp8_device_synchronize(cl), FP8_OK);
        wc = malloc(layout.words * 4);
        uint32_t *wd = malloc(layout.words * 4);
        read_words(plan.c, layout.words, wc);
        read_words(plan.d, layout.words, wd);
        CHECK(memcmp(wc, wd, layout.workspace_at * 4) == 0, "%s: the device plan differs from the CPU's", c->name);
        total = wc[FP8I_MOE_H_TOTAL_ROWS];
        free(wd);
        pair_free(&ib);
        free(ids);
    }

    /* Experts: codes, scales (per expert), tensor scales, bias. */
    const size_t one = storage(c->wdt, (size_t)c->n * c->k), estride = one + c->w_gap;
    uint8_t *wq = calloc(1, c->w_off + estride * e);
    for (uint32_t x = 0; x < e; x++)
        for (size_t i = 0; i < one; i++) wq[c->w_off + x * estride + i] = rand_code(&rng, c->wdt, c->wdt == FP8_E2M1 ? 2.0f : 1.0f);
    if (c->specials) {
        /* per expert: row x + 1 (a gate row), row n / 2 + x + 2 (an up row) and row n - 1, at different k */
        const uint8_t nan_code = c->wdt == FP8_E4M3FN ? 0x7f : c->wdt == FP8_E5M2 ? 0x7e : 0x80;
        for (uint32_t x = 0; x < e; x++) {
            uint8_t *wx = wq + c->w_off + x * estride;
            wx[(size_t)(x + 1) * c->k + 5] = nan_code;
            wx[(size_t)(c->n / 2 + x + 2) * c->k + c->k - 3] = c->wdt == FP8_E5M2 ? 0x7c : nan_code | 0x80; /* +Inf, -NaN */
            wx[(size_t)(c->n - 1) * c->k + 17 + x] = c->wdt == FP8_E5M2 ? 0xfc : nan_code;              /* -Inf, NaN */
        }
    }
    size_t scount = 0, sbytes = 0;
    CHECK_STATUS(fp8_scale_count(&c->wl, c->n, c->k, &scount), FP8_OK);
    void *ws = scount ? rand_scales(&rng, c->wl.dtype, scount * e, &sbytes) : NULL;
    pair wb = pair_make(cl, wq, c->w_off + estride * e), sb = {0}, tb = {0}, bb = {0};
    fp8_moe_weights wt = {.w = {.buffer = NULL, .offset = c->w_off, .dtype = c->wdt}, .expert_stride = c->w_gap ? estride : 0,
                          .scales = {.layout = c->wl}};
    if (scount) sb = pair_make(cl, ws, sbytes);
    if (c->tensor_scales) {
        float ts[16];
        for (uint32_t x = 0; x < e; x++) ts[x] = test_rng_uniform(&rng, 0.25f, 4.0f);
        tb = pair_make(cl, ts, e * 4);
    }
    if (c->bdt) {
        float *bias = malloc((size_t)e * c->n * 4);
        for (size_t i = 0; i < (size_t)e * c->n; i++) bias[i] = test_rng_uniform(&rng, -2.0f, 2.0f);
        uint8_t *enc = malloc(storage(c->bdt, (size_t)e * c->n));
        fp8_encode_array(c->bdt, bias, (size_t)e * c->n, enc, storage(c->bdt, (size_t)e * c->n), FP8_OVERFLOW_CAST);
        bb = pair_make(cl, enc, storage(c->bdt, (size_t)e * c->n));
        free(bias);
        free(enc);
    }

    /* Activations: tokens, or plan rows with NaN in the rows no one may read. */
    const uint32_t xrows = dense || c->gathered ? m : rows;
    const uint32_t *row_token = wc ? wc + layout.row_token_at : NULL;
    const size_t xbytes = c->x_off + storage(c->xdt, (size_t)xrows * c->k);
    uint8_t *xq = calloc(1, xbytes);
    const int fp8x = c->xdt != FP8_F32 && c->xdt != FP8_F16 && c->xdt != FP8_BF16;
    for (uint32_t r = 0; r < xrows; r++) {
        const int unread = !dense && !c->gathered && (r >= total || row_token[r] == NONE);
        for (uint32_t j = 0; j < c->k; j++) {
            const size_t i = (size_t)r * c->k + j;
            if (fp8x) {
                xq[c->x_off + i] = unread ? (uint8_t)fp8_encode_value(c->xdt, NAN, FP8_OVERFLOW_CAST) : rand_code(&rng, c->xdt, 8.0f);
            } else {
                const float v = unread ? NAN : test_rng_normal(&rng);
                fp8_encode_array(c->xdt, &v, 1, xq + c->x_off + storage(c->xdt, i), storage(c->xdt, 1), FP8_OVERFLOW_CAST);
            }
        }
    }
    pair xb = pair_make(cl, xq, xbytes), xsb = {0};
    fp8_scales xs = {0};
    if (fp8x) {
        size_t xc = 0, xsbytes = 0;
        CHECK_STATUS(fp8_scale_count(&c->xl, xrows, c->k, &xc), FP8_OK);
        void *xsv = rand_scales(&rng, c->xl.dtype, xc, &xsbytes);
        xsb = pair_make(cl, xsv, xsbytes);
        xs.layout = c->xl;
        free(xsv);
    }

    /* Outputs, prefilled with a sentinel that rows past total_rows must keep. */
    const size_t ybytes = storage(c->ydt, (size_t)rows * n_out);
    pair yb = pair_fill(cl, ybytes, SENTINEL);
    for (int dv = 0; dv < 2; dv++) {
        fp8_moe_gemm_desc d = {.plan = pd, .n = c->n, .k = c->k, .weights = wt,
                               .x = {.buffer = side(&xb, dv), .offset = c->x_off, .dtype = c->xdt}, .x_scales = xs,
                               .x_gathered = (uint32_t)c->gathered, .activation = c->act,
                               .y = {.buffer = side(&yb, dv), .dtype = c->ydt}};
        if (!dense) d.plan.buffer = side(&plan, dv);
        d.weights.w.buffer = side(&wb, dv);
        if (scount) d.weights.scales.buffer = side(&sb, dv);
        if (c->tensor_scales) d.weights.tensor_scales = (fp8_operand){.buffer = side(&tb, dv), .dtype = FP8_F32};
        if (c->bdt) d.weights.bias = (fp8_operand){.buffer = side(&bb, dv), .dtype = c->bdt};
        if (fp8x) d.x_scales.buffer = side(&xsb, dv);
        CHECK_STATUS(fp8_moe_grouped_gemm(dv ? cl : g_cpu, &d), FP8_OK);
    }
    CHECK_STATUS(fp8_device_synchronize(cl), FP8_OK);
    uint8_t *yc = malloc(ybytes), *yd = malloc(ybytes);
    fp8_buffer_read(yb.c, 0, yc, ybytes);
    fp8_buffer_read(yb.d, 0, yd, ybytes);
    double amax = 0;
    for (uint32_t r = 0; r < total; r++)
        for (uint32_t j = 0; j < n_out; j++) {
            const double v = to_float(c->ydt, yc, (size_t)r * n_out + j);
            if (isfinite(v)) amax = fmax(amax, fabs(v));
        }
    const int generic = (c->wl.kind == FP8_SCALE_COL) || (c->wl.kind == FP8_SCALE_BLOCK && c->wl.block_cols % 16 &&
                                                          c->wl.block_cols < c->k);
    const double ulp = c->ydt == FP8_F32 ? 0x1p-23 : c->ydt == FP8_F16 ? 0x1p-10 : 0x1p-7;
    const double tol = (generic ? 64 : 4) * ulp;
    double worst = 0;
    uint32_t bad = 0;
    for (uint32_t r = 0; r < total; r++)
        for (uint32_t j = 0; j < n_out; j++) {
            const size_t i = (size_t)r * n_out + j;
            const double want = to_float(c->ydt, yc, i), got = to_float(c->ydt, yd, i);
            /* NaN where the CPU has NaN, the same infinity where it has one */
            const bool same = isnan(want) ? isnan(got) : got == want;
            const double err = isnan(want) || isinf(want) ? (same ? 0.0 : INFINITY)
                                                          : fabs(got - want) / fmax(fabs(want), 1e-3 * amax);
            if (!(err <= tol) && bad++ < 3)
                fprintf(stderr, "  %s [%s]: y[%u,%u] = %.9g, cpu %.9g\n", c->name, g_cl_name[which], r, j, got, want);
            if (!(err <= worst)) worst = err;
        }
    CHECK(bad == 0, "%s [%s]: %u outputs off the CPU by more than %.2g (worst %.3g)", c->name, g_cl_name[which], bad,
          tol, worst);
    const size_t tail = storage(c->ydt, (size_t)total * n_out);
    int kept = 1;
    for (size_t i = tail; i < ybytes; i++) kept &= yd[i] == SENTINEL;
    CHECK(kept, "%s [%s]: rows past total_rows (%u of %u) were written", c->name, g_cl_name[which], total, rows);
    printf("  %-36s %-5s worst %.3g (tol %.2g)\n", c->name, g_cl_name[which], worst, tol);

    free(yc); free(yd); free(xq); free(wq); free(ws); free(wc);
    pair_free(&plan); pair_free(&wb); pair_free(&sb); pair_free(&tb); pair_free(&bb); pair_free(&xb); pair_free(&xsb);
    pair_free(&yb);
}

/* ------------------------------------------------------------------------------------------------
 * Routing and grouping at the limits: E = 4096, k = 64, many 256-slot chunks, bad ids.
 * ---------------------------------------------------------------------------------------------- */
static void test_route_large(fp8_device *cl)
{
    enum { M = 3, E = 4096, K = 64 };
    test_rng rng = {0x4096};
    float *l = malloc((size_t)M * E * 4), bias[E];
    for (size_t i = 0; i < (size_t)M * E; i++) l[i] = 3.0f * test_rng_normal(&rng);
    for (int i = 0; i < E; i++) bias[i] = 0.1f * test_rng_normal(&rng);
    const fp8_dtype dts[] = {FP8_F32, FP8_BF16};
    for (int di = 0; di < 2; di++)
        for (int grouped = 0; grouped < 2; grouped++) {
            const size_t lb = storage(dts[di], (size_t)M * E);
            uint8_t *enc = malloc(lb);
            fp8_encode_array(dts[di], l, (size_t)M * E, enc, lb, FP8_OVERFLOW_CAST);
            pair lp = pair_make(cl, enc, lb), bp = pair_make(cl, bias, sizeof bias);
            pair ip = pair_fill(cl, (size_t)M * K * 4, 0), wp = pair_fill(cl, (size_t)M * K * 4, 0);
            for (int dv = 0; dv < 2; dv++) {
                fp8_moe_route_desc d = {.m = M, .experts = E, .top_k = K, .logits = {.buffer = side(&lp, dv), .dtype = dts[di]},
                                        .ids = {.buffer = side(&ip, dv), .dtype = FP8_I32},
                                        .weights = {.buffer = side(&wp, dv), .dtype = FP8_F32}};
                d.router = grouped ? (fp8_moe_router){.scoring = FP8_MOE_SCORE_SIGMOID, .n_group = 64, .topk_group = 8,
                                                      .renormalize = 1, .routed_scaling_factor = 2.5f,
                                                      .bias = {.buffer = side(&bp, dv), .dtype = FP8_F32}}
                                   : (fp8_moe_router){.scoring = FP8_MOE_SCORE_SOFTMAX, .renormalize = 1};
                CHECK_STATUS(fp8_moe_route(dv ? cl : g_cpu, &d), FP8_OK);
            }
            CHECK_STATUS(fp8_device_synchronize(cl), FP8_OK);
            int32_t ic[M * K], id[M * K];
            float wc[M * K], wd[M * K];
            fp8_buffer_read(ip.c, 0, ic, sizeof ic);
            fp8_buffer_read(ip.d, 0, id, sizeof id);
            fp8_buffer_read(wp.c, 0, wc, sizeof wc);
            fp8_buffer_read(wp.d, 0, wd, sizeof wd);
            int same = memcmp(ic, id, sizeof ic) == 0;
            double worst = 0;
            for (int i = 0; i < M * K; i++) worst = fmax(worst, fabs(wd[i] - wc[i]) / fabs(wc[i]));
            CHECK(same && worst <= 1e-6, "route E=%d k=%d %s %s: ids %s, weights off by %.3g", E, K, fp8_dtype_name(dts[di]),
                  grouped ? "grouped sigmoid" : "softmax", same ? "equal" : "differ", worst);
            free(enc);
            pair_free(&lp); pair_free(&bp); pair_free(&ip); pair_free(&wp);
        }
    free(l);
    printf("  route: E=%d k=%d, softmax and 64-group sigmoid, as on the CPU\n", E, K);
}

static void test_group_large(fp8_device *cl)
{
    const struct { uint32_t m, k, e, a; } shapes[] = {{300, 8, 4096, 1}, {300, 8, 9, 64}, {1000, 2, 64, 32}, {129, 3, 5, 1}};
    test_rng rng = {0x6e0};
    for (size_t si = 0; si < sizeof shapes / sizeof shapes[0]; si++) {
        const uint32_t m = shapes[si].m, k = shapes[si].k, e = shapes[si].e, a = shapes[si].a;
        int32_t *ids = malloc((size_t)m * k * 4);
        uint32_t bad = 0;
        for (size_t i = 0; i < (size_t)m * k; i++) {
            const uint64_t r = test_rng_next(&rng);
            ids[i] = (r & 31) == 0 ? (int32_t)(r >> 32) | (int32_t)e : (int32_t)((r >> 8) % (e < 32 ? e : e / 16)); /* large E: skewed */
            bad += ids[i] < 0 || (uint32_t)ids[i] >= e;
        }
        fp8i_moe_plan L;
        CHECK_STATUS(fp8i_moe_plan_layout(m, k, e, a, &L), FP8_OK);
        pair ip = pair_make(cl, ids, (size_t)m * k * 4), pp = pair_fill(cl, L.words * 4, 0xA5);
        fp8_status st[2];
        for (int dv = 0; dv < 2; dv++) {
            fp8_moe_group_desc gd = {.ids = {.buffer = side(&ip, dv), .dtype = FP8_I32},
                                     .plan = {.buffer = side(&pp, dv), .m = m, .top_k = k, .experts = e, .row_align = a}};
            st[dv] = fp8_moe_group(dv ? cl : g_cpu, &gd);
        }
        CHECK_STATUS(st[0], bad ? FP8_ERR_EXPERT_ID : FP8_OK);
        CHECK_STATUS(st[1], FP8_OK);
        CHECK_STATUS(fp8_device_synchronize(cl), bad ? FP8_ERR_EXPERT_ID : FP8_OK);
        uint32_t *wc = malloc(L.words * 4), *wd = malloc(L.words * 4);
        fp8_buffer_read(pp.c, 0, wc, L.words * 4);
        fp8_buffer_read(pp.d, 0, wd, L.words * 4);
        size_t first = L.workspace_at;
        for (size_t i = 0; i < L.workspace_at; i++)
            if (wc[i] != wd[i]) { first = i; break; }
        CHECK(first == L.workspace_at, "group M=%u k=%u E=%u A=%u (%u bad ids): plans differ first at word %zu (%u vs %u)", m,
              k, e, a, bad, first, first < L.workspace_at ? wd[first] : 0, first < L.workspace_at ? wc[first] : 0);
        free(wc); free(wd); free(ids);
        pair_free(&ip); pair_free(&pp);
    }
    printf("  group: up to 2000 slots (8 chunks), E up to 4096, bad ids: plans as on the CPU\n");
}

/* ------------------------------------------------------------------------------------------------
 * Quantization: the slot called directly on both devices, bytes and scale bits compared.
 * ---------------------------------------------------------------------------------------------- */
static fp8i_matrix mat(fp8_buffer *b, size_t off, fp8_dtype dt, size_t stride)
{
    return (fp8i_matrix){.buffer = b, .offset = off, .dtype = dt, .row_stride = stride};
}

static void test_quantize(fp8_device *cl)
{
    const fp8_dtype dsts[] = {FP8_E4M3FN, FP8_E5M2, FP8_E4M3FNUZ, FP8_E5M2FNUZ};
    const fp8_dtype srcs[] = {FP8_F32, FP8_F16, FP8_BF16};
    enum { ROWS = 7, COLS = 300 };
    test_rng rng = {0xfeed};
    uint32_t cases = 0;
    for (int di = 0; di < 4; di++)
        for (int si = 0; si < 3; si++)
            for (int bi = 0; bi < 3; bi++) {
                const fp8_dtype dd = dsts[di], sd = srcs[si];
                const uint32_t bc = bi == 0 ? COLS : bi == 1 ? 32 : 7, nb = (COLS + bc - 1) / bc;
                const float qmax = (float)fp8_dtype_max(dd);
                float *src = malloc((size_t)ROWS * COLS * 4);
                for (uint32_t r = 0; r < ROWS; r++)
                    for (uint32_t j = 0; j < COLS; j++) {
                        float v;
                        if (r < 3) {
                            /* Rows 0-2: every block holds +-qmax, so its scale is exactly 1 and the encoder sees
                             * the values themselves: midpoints of two codes, a float either side, subnormals,
                             * values past the largest code. */
                            uint32_t code;
                            do code = (uint32_t)(test_rng_next(&rng) & 0x7f);
                            while (!isfinite(fp8_decode_value(dd, code)));
                            const float lo = fp8_decode_value(dd, code), hi = fp8_decode_value(dd, code + 1);
                            const float mid = (isfinite(lo) && isfinite(hi)) ? 0.5f * (lo + hi) : lo;
                            const int pick = (int)(test_rng_next(&rng) % 6);
                            v = pick == 0 ? mid : pick == 1 ? nextafterf(mid, INFINITY) : pick == 2 ? nextafterf(mid, 0)
                                : pick == 3 ? test_rng_normal(&rng) * 1e-3f * (float)(r + 1)
                                : pick == 4 ? test_rng_uniform(&rng, -qmax, qmax) : lo;
                            if (test_rng_next(&rng) & 1) v = -v;
                            if (j % bc == 0) v = (j / bc) & 1 ? -qmax : qmax;
                        } else {
                            v = test_rng_normal(&rng) * powf(10.0f, (float)r - 4.0f); /* 1e-1 .. 1e2 */
                        }
                        src[(size_t)r * COLS + j] = v;
                    }
                if (si == 0 && bi < 2) src[5 * COLS + 17] = NAN; /* one row that must quantize to zeros, in every group */
                const size_t sbytes = storage(sd, (size_t)ROWS * COLS);
                uint8_t *enc = malloc(sbytes);
                fp8_encode_array(sd, src, (size_t)ROWS * COLS, enc, sbytes, FP8_OVERFLOW_CAST);
                pair sp = pair_make(cl, enc, sbytes);
                pair qp = pair_fill(cl, (size_t)ROWS * COLS, SENTINEL), scp = pair_fill(cl, (size_t)ROWS * nb * 4, SENTINEL);
                fp8_status st[2];
                for (int dv = 0; dv < 2; dv++) {
                    fp8_device *dev = dv ? cl : g_cpu;
                    const fp8i_moe_quant_args a = {.rows = ROWS, .cols = COLS, .block_cols = bc,
                                                   .src = mat(side(&sp, dv), 0, sd, COLS), .dst = mat(side(&qp, dv), 0, dd, COLS),
                                                   .scales = mat(side(&scp, dv), 0, FP8_F32, nb)};
                    st[dv] = dev->backend->moe_quantize_rows(dev, &a);
                }
                const fp8_status want = si == 0 && bi < 2 ? FP8_ERR_NOT_FINITE : FP8_OK;
                CHECK_STATUS(st[0], want);
                CHECK_STATUS(st[1], FP8_OK);
                CHECK_STATUS(fp8_device_synchronize(cl), want);
                uint8_t *qc = malloc((size_t)ROWS * COLS), *qd = malloc((size_t)ROWS * COLS);
                float *sc = malloc((size_t)ROWS * nb * 4), *sdv = malloc((size_t)ROWS * nb * 4);
                fp8_buffer_read(qp.c, 0, qc, (size_t)ROWS * COLS);
                fp8_buffer_read(qp.d, 0, qd, (size_t)ROWS * COLS);
                fp8_buffer_read(scp.c, 0, sc, (size_t)ROWS * nb * 4);
                fp8_buffer_read(scp.d, 0, sdv, (size_t)ROWS * nb * 4);
                uint32_t diff = 0;
                for (size_t i = 0; i < (size_t)ROWS * COLS; i++)
                    if (qc[i] != qd[i] && diff++ < 3)
                        fprintf(stderr, "  quantize %s<-%s b%u: [%zu] %.9g -> device %02x, cpu %02x\n", fp8_dtype_name(dd),
                                fp8_dtype_name(sd), bc, i, src[i], qd[i], qc[i]);
                CHECK(diff == 0, "quantize %s <- %s, blocks of %u: %u codes differ from the CPU", fp8_dtype_name(dd),
                      fp8_dtype_name(sd), bc, diff);
                CHECK(memcmp(sc, sdv, (size_t)ROWS * nb * 4) == 0, "quantize %s <- %s, blocks of %u: scales differ",
                      fp8_dtype_name(dd), fp8_dtype_name(sd), bc);
                cases++;
                free(qc); free(qd); free(sc); free(sdv); free(enc); free(src);
                pair_free(&sp); pair_free(&qp); pair_free(&scp);
            }
    printf("  quantize: %u dtype/block combinations bit-exact\n", cases);
}

/* With a plan: rows past total_rows and padding rows are left alone. */
static void test_quantize_plan(fp8_device *cl)
{
    enum { M = 5, K = 2, E = 3, A = 4, COLS = 40 };
    int32_t ids[M * K] = {0, 2, 0, 1, 2, 0, 0, 1, 0, 2};
    fp8i_moe_plan L;
    CHECK_STATUS(fp8i_moe_plan_layout(M, K, E, A, &L), FP8_OK);
    pair ib = pair_make(cl, ids, sizeof ids), plan = pair_fill(cl, L.words * 4, 0);
    const fp8_moe_plan pd = {.m = M, .top_k = K, .experts = E, .row_align = A};
    float *h = malloc((size_t)L.rows * COLS * 4);
    test_rng rng = {0x9a9};
    for (size_t i = 0; i < (size_t)L.rows * COLS; i++) h[i] = test_rng_normal(&rng);
    pair hp = pair_make(cl, h, (size_t)L.rows * COLS * 4);
    pair qp = pair_fill(cl, (size_t)L.rows * COLS, SENTINEL), scp = pair_fill(cl, (size_t)L.rows * 4, SENTINEL);
    for (int dv = 0; dv < 2; dv++) {
        fp8_device *dev = dv ? cl : g_cpu;
        fp8_moe_plan p = pd;
        p.buffer = side(&plan, dv);
        fp8_moe_group_desc gd = {.ids = {.buffer = side(&ib, dv), .dtype = FP8_I32}, .plan = p};
        CHECK_STATUS(fp8_moe_group(dev, &gd), FP8_OK);
        fp8i_moe_quant_args a = {.rows = L.rows, .cols = COLS, .block_cols = COLS, .src = mat(side(&hp, dv), 0, FP8_F32, COLS),
                                 .dst = mat(side(&qp, dv), 0, FP8_E4M3FN, COLS),
                                 .scales = mat(side(&scp, dv), 0, FP8_F32, 1), .plan = L};
        a.plan.buffer = side(&plan, dv);
        CHECK_STATUS(dev->backend->moe_quantize_rows(dev, &a), FP8_OK);
    }
    CHECK_STATUS(fp8_device_synchronize(cl), FP8_OK);
    uint8_t *qc = malloc((size_t)L.rows * COLS), *qd = malloc((size_t)L.rows * COLS);
    fp8_buffer_read(qp.c, 0, qc, (size_t)L.rows * COLS);
    fp8_buffer_read(qp.d, 0, qd, (size_t)L.rows * COLS);
    CHECK(memcmp(qc, qd, (size_t)L.rows * COLS) == 0, "quantize with a plan: device rows differ from the CPU's");
    uint32_t *w = malloc(L.words * 4);
    fp8_buffer_read(plan.d, 0, w, L.words * 4);
    uint32_t padding = 0;
    for (uint32_t r = 0; r < L.rows; r++)
        if (r >= w[FP8I_MOE_H_TOTAL_ROWS] || w[L.row_token_at + r] == NONE) {
            padding++;
            CHECK(qd[(size_t)r * COLS] == SENTINEL && qd[(size_t)r * COLS + COLS - 1] == SENTINEL,
                  "quantize: padding row %u was written", r);
        }
    CHECK(padding > 0, "the plan has no padding rows to check");
    free(qc); free(qd); free(w); free(h);
    pair_free(&ib); pair_free(&plan); pair_free(&hp); pair_free(&qp); pair_free(&scp);
}

/* ------------------------------------------------------------------------------------------------
 * The error word, corrupt plans and fuzzed plans.
 * ---------------------------------------------------------------------------------------------- */
enum { FM = 6, FK = 2, FE = 5, FH = 32, FI = 16, FA = 4 };

typedef struct fixture {
    fp8_buffer *ids, *plan, *x, *w, *s, *wts, *rows, *y;
    fp8i_moe_plan L;
    size_t guard, ybytes;
} fixture;

static void fixture_make(fp8_device *cl, fixture *f)
{
    test_rng rng = {0xe77};
    memset(f, 0, sizeof *f);
    int32_t ids[FM * FK];
    for (int i = 0; i < FM * FK; i++) ids[i] = (i * 3 + i / FK) % FE;
    CHECK_STATUS(fp8i_moe_plan_layout(FM, FK, FE, FA, &f->L), FP8_OK);
    fp8_buffer_create(cl, sizeof ids, &f->ids);
    fp8_buffer_write(f->ids, 0, ids, sizeof ids);
    fp8_buffer_create(cl, f->L.words * 4, &f->plan);
    float x[FM * FH], wts[FM * FK];
    for (int i = 0; i < FM * FH; i++) x[i] = test_rng_normal(&rng);
    for (int i = 0; i < FM * FK; i++) wts[i] = test_rng_uniform(&rng, 0.1f, 1.0f);
    fp8_buffer_create(cl, sizeof x, &f->x);
    fp8_buffer_write(f->x, 0, x, sizeof x);
    fp8_buffer_create(cl, sizeof wts, &f->wts);
    fp8_buffer_write(f->wts, 0, wts, sizeof wts);
    uint8_t wq[FE * 2 * FI * FH];
    for (size_t i = 0; i < sizeof wq; i++) wq[i] = rand_code(&rng, FP8_E4M3FN, 1.0f);
    fp8_buffer_create(cl, sizeof wq, &f->w);
    fp8_buffer_write(f->w, 0, wq, sizeof wq);
    float s[FE * 2 * FI];
    for (int i = 0; i < FE * 2 * FI; i++) s[i] = 0.05f;
    fp8_buffer_create(cl, sizeof s, &f->s);
    fp8_buffer_write(f->s, 0, s, sizeof s);
    fp8_buffer_create(cl, (size_t)f->L.rows * FH * 4, &f->rows);
    /* y between two guard bands: whatever a corrupt plan makes the kernels do, the bands must survive. */
    f->guard = 4096;
    f->ybytes = (size_t)f->L.rows * FI * 4;
    fp8_buffer_create(cl, f->ybytes + 2 * f->guard, &f->y);
}

static void fixture_free(fixture *f)
{
    fp8_buffer *b[] = {f->ids, f->plan, f->x, f->w, f->s, f->wts, f->rows, f->y};
    for (size_t i = 0; i < sizeof b / sizeof b[0]; i++) fp8_buffer_free(b[i]);
}

static fp8_moe_plan fx_plan(const fixture *f, fp8_buffer *buffer)
{
    return (fp8_moe_plan){.buffer = buffer, .m = FM, .top_k = FK, .experts = FE, .row_align = FA};
}

static fp8_moe_gemm_desc fx_gemm(const fixture *f, fp8_buffer *plan)
{
    fp8_moe_gemm_desc d = {.plan = fx_plan(f, plan), .n = 2 * FI, .k = FH, .x = {.buffer = f->x, .dtype = FP8_F32},
                           .x_gathered = 1, .activation = FP8_MOE_ACT_SWIGLU,
                           .y = {.buffer = f->y, .offset = f->guard, .dtype = FP8_F32}};
    d.weights.w = (fp8_operand){.buffer = f->w, .dtype = FP8_E4M3FN};
    d.weights.scales = (fp8_scales){.layout = {.kind = FP8_SCALE_ROW, .dtype = FP8_F32}, .buffer = f->s};
    return d;
}

static fp8_moe_combine_desc fx_combine(const fixture *f, fp8_buffer *plan)
{
    return (fp8_moe_combine_desc){.plan = fx_plan(f, plan), .hidden = FH, .rows = {.buffer = f->rows, .dtype = FP8_F32},
                                  .weights = {.buffer = f->wts, .dtype = FP8_F32},
                                  .y = {.buffer = f->y, .offset = f->guard, .dtype = FP8_F32}};
}

static void fill_y(const fixture *f)
{
    uint8_t *tmp = malloc(f->ybytes + 2 * f->guard);
    memset(tmp, SENTINEL, f->ybytes + 2 * f->guard);
    fp8_buffer_write(f->y, 0, tmp, f->ybytes + 2 * f->guard);
    free(tmp);
}

/* Guard bands intact; `inside` also requires the y region itself untouched. */
static int y_intact(const fixture *f, int inside)
{
    const size_t total = f->ybytes + 2 * f->guard;
    uint8_t *tmp = malloc(total);
    fp8_buffer_read(f->y, 0, tmp, total);
    int ok = 1;
    for (size_t i = 0; i < total; i++)
        if ((inside || i < f->guard || i >= f->guard + f->ybytes) && tmp[i] != SENTINEL) ok = 0;
    free(tmp);
    return ok;
}

static void test_error_word(fp8_device *cl)
{
    fixture f;
    fixture_make(cl, &f);
    CHECK_STATUS(fp8_device_synchronize(cl), FP8_OK);
    fp8_moe_group_desc gd = {.ids = {.buffer = f.ids, .dtype = FP8_I32}, .plan = fx_plan(&f, f.plan)};
    CHECK_STATUS(fp8_moe_group(cl, &gd), FP8_OK);
    CHECK_STATUS(fp8_device_synchronize(cl), FP8_OK);
    uint32_t *good = malloc(f.L.words * 4), *w = malloc(f.L.words * 4);
    fp8_buffer_read(f.plan, 0, good, f.L.words * 4);

    /* NaN logits: the call enqueues fine, synchronize reports, then the word is clear. */
    float l[FM * FE];
    for (int i = 0; i < FM * FE; i++) l[i] = (float)(i % 7);
    l[7] = NAN;
    fp8_buffer *lb = NULL, *ib = NULL, *wb = NULL;
    fp8_buffer_create(cl, sizeof l, &lb);
    fp8_buffer_write(lb, 0, l, sizeof l);
    fp8_buffer_create(cl, FM * FK * 4, &ib);
    fp8_buffer_create(cl, FM * FK * 4, &wb);
    fp8_moe_route_desc rd = {.m = FM, .experts = FE, .top_k = FK, .logits = {.buffer = lb, .dtype = FP8_F32},
                             .ids = {.buffer = ib, .dtype = FP8_I32}, .weights = {.buffer = wb, .dtype = FP8_F32}};
    CHECK_STATUS(fp8_moe_route(cl, &rd), FP8_OK);
    CHECK_STATUS(fp8_device_synchronize(cl), FP8_ERR_NOT_FINITE);
    CHECK_STATUS(fp8_device_synchronize(cl), FP8_OK);

    /* The first error wins: NaN routing, then bad ids. */
    int32_t bad_ids[FM * FK];
    for (int i = 0; i < FM * FK; i++) bad_ids[i] = i == 3 ? -7 : i % FE;
    fp8_buffer *bib = NULL, *bplan = NULL;
    fp8_buffer_create(cl, sizeof bad_ids, &bib);
    fp8_buffer_write(bib, 0, bad_ids, sizeof bad_ids);
    fp8_buffer_create(cl, f.L.words * 4, &bplan);
    fp8_moe_group_desc bgd = {.ids = {.buffer = bib, .dtype = FP8_I32}, .plan = fx_plan(&f, bplan)};
    CHECK_STATUS(fp8_moe_route(cl, &rd), FP8_OK);
    CHECK_STATUS(fp8_moe_group(cl, &bgd), FP8_OK);
    CHECK_STATUS(fp8_device_synchronize(cl), FP8_ERR_NOT_FINITE);
    CHECK_STATUS(fp8_device_synchronize(cl), FP8_OK);
    CHECK_STATUS(fp8_moe_group(cl, &bgd), FP8_OK);
    CHECK_STATUS(fp8_device_synchronize(cl), FP8_ERR_EXPERT_ID);
    fp8_buffer_read(bplan, 0, w, f.L.words * 4);
    CHECK((int32_t)w[FP8I_MOE_H_STATUS] == FP8_ERR_EXPERT_ID && w[FP8I_MOE_H_DROPPED] == 1, "bad-id plan: status %d dropped %u",
          (int32_t)w[FP8I_MOE_H_STATUS], w[FP8I_MOE_H_DROPPED]);

    /* A row token past M: INVALID_ARGUMENT in the word and in the plan's status, nothing outside y. */
    fp8_moe_gemm_desc g = fx_gemm(&f, bplan);
    memcpy(w, good, f.L.words * 4);
    w[f.L.row_token_at + 1] = FM + 5;
    fp8_buffer_write(bplan, 0, w, f.L.words * 4);
    fill_y(&f);
    CHECK_STATUS(fp8_moe_grouped_gemm(cl, &g), FP8_OK);
    CHECK_STATUS(fp8_device_synchronize(cl), FP8_ERR_INVALID_ARGUMENT);
    CHECK(y_intact(&f, 0), "a bad row token made the GEMM write outside y");
    fp8_buffer_read(bplan, 4, w, 4);
    CHECK((int32_t)w[0] == FP8_ERR_INVALID_ARGUMENT, "plan status %d after a bad row token", (int32_t)w[0]);

    /* A plan never grouped (zeros): nothing written at all. */
    memset(w, 0, f.L.words * 4);
    fp8_buffer_write(bplan, 0, w, f.L.words * 4);
    fill_y(&f);
    CHECK_STATUS(fp8_moe_grouped_gemm(cl, &g), FP8_OK);
    fp8_moe_combine_desc cd = fx_combine(&f, bplan);
    CHECK_STATUS(fp8_moe_combine(cl, &cd), FP8_OK);
    CHECK_STATUS(fp8_device_synchronize(cl), FP8_ERR_INVALID_ARGUMENT);
    CHECK(y_intact(&f, 1), "a plan that was never grouped was followed");

    /* Combine through a slot row past R. */
    memcpy(w, good, f.L.words * 4);
    w[f.L.slot_row_at + 2] = f.L.rows + 7;
    fp8_buffer_write(bplan, 0, w, f.L.words * 4);
    fill_y(&f);
    CHECK_STATUS(fp8_moe_combine(cl, &cd), FP8_OK);
    CHECK_STATUS(fp8_device_synchronize(cl), FP8_ERR_INVALID_ARGUMENT);
    CHECK(y_intact(&f, 0), "a bad slot row made combine write outside y");

    /* An expert id past E in the active list and in tile_expert. */
    for (int t = 0; t < 2; t++) {
        memcpy(w, good, f.L.words * 4);
        if (t == 0) w[f.L.active_at] = FE + 3;
        else w[f.L.tile_expert_at] = FE + 3;
        fp8_buffer_write(bplan, 0, w, f.L.words * 4);
        fill_y(&f);
        CHECK_STATUS(fp8_moe_grouped_gemm(cl, &g), FP8_OK);
        /* The auto device takes tiles for A = 4 and reads tile_expert; the active list is the GEMV's. */
        const fp8_status st = fp8_device_synchronize(cl);
        CHECK(st == FP8_ERR_INVALID_ARGUMENT || st == FP8_OK, "bad expert id in the plan: %s", fp8_status_name(st));
        CHECK(y_intact(&f, 0), "a bad expert id made the GEMM write outside y");
    }
    free(good); free(w);
    fp8_buffer_free(lb); fp8_buffer_free(ib); fp8_buffer_free(wb); fp8_buffer_free(bib); fp8_buffer_free(bplan);
    fixture_free(&f);
}

/* Random damage to a good plan: every kernel stays inside its operands, and synchronize says OK or
 * INVALID_ARGUMENT. */
static void test_fuzz(fp8_device *cl, const char *name)
{
    fixture f;
    fixture_make(cl, &f);
    fp8_moe_group_desc gd = {.ids = {.buffer = f.ids, .dtype = FP8_I32}, .plan = fx_plan(&f, f.plan)};
    CHECK_STATUS(fp8_moe_group(cl, &gd), FP8_OK);
    uint32_t *good = malloc(f.L.words * 4), *w = malloc(f.L.words * 4);
    fp8_buffer_read(f.plan, 0, good, f.L.words * 4);
    fp8_buffer *pb = NULL;
    fp8_buffer_create(cl, f.L.words * 4, &pb);
    test_rng rng = {0xf022};
    int invalid = 0, ok = 0;
    for (int i = 0; i < 60; i++) {
        memcpy(w, good, f.L.words * 4);
        const int hits = 1 + (int)(test_rng_next(&rng) % 3);
        for (int j = 0; j < hits; j++) {
            const size_t at = 2 + test_rng_next(&rng) % (f.L.workspace_at - 2);
            const uint64_t r = test_rng_next(&rng);
            w[at] = (r & 3) == 0 ? NONE : (r & 3) == 1 ? (uint32_t)(r >> 8) : (uint32_t)((r >> 8) % (f.L.rows + 3));
        }
        fp8_buffer_write(pb, 0, w, f.L.words * 4);
        fill_y(&f);
        fp8_moe_gemm_desc g = fx_gemm(&f, pb);
        CHECK_STATUS(fp8_moe_grouped_gemm(cl, &g), FP8_OK);
        fp8_status st = fp8_device_synchronize(cl);
        CHECK(st == FP8_OK || st == FP8_ERR_INVALID_ARGUMENT, "fuzzed plan: gemm gave %s", fp8_status_name(st));
        CHECK(y_intact(&f, 0), "fuzzed plan %d: the GEMM wrote outside y", i);
        fill_y(&f);
        fp8_moe_combine_desc c = fx_combine(&f, pb);
        CHECK_STATUS(fp8_moe_combine(cl, &c), FP8_OK);
        fp8_status st2 = fp8_device_synchronize(cl);
        CHECK(st2 == FP8_OK || st2 == FP8_ERR_INVALID_ARGUMENT, "fuzzed plan: combine gave %s", fp8_status_name(st2));
        CHECK(y_intact(&f, 0), "fuzzed plan %d: combine wrote outside y", i);
        invalid += st != FP8_OK;
        ok += st == FP8_OK;
    }
    CHECK(invalid > 0 && ok > 0, "fuzz [%s] exercised one outcome only (%d invalid, %d ok)", name, invalid, ok);
    printf("  fuzz [%s]: %d plans refused on the device, %d ran\n", name, invalid, ok);
    free(good); free(w);
    fp8_buffer_free(pb);
    fixture_free(&f);
}

/* ------------------------------------------------------------------------------------------------ */
static fp8_device *open_cl(uint32_t idx, const char *kernel)
{
    if (kernel) setenv("FP8_CL_MOE_KERNEL", kernel, 1);
    else unsetenv("FP8_CL_MOE_KERNEL");
    fp8_device *dev = NULL;
    CHECK_STATUS(fp8_device_open(g_ctx, idx, &dev), FP8_OK);
    if (!dev) return NULL;
    /* The kernel choice is read at the device's first MoE call: make it now. */
    int32_t zero = 0;
    fp8_buffer *ib = NULL, *pb = NULL;
    size_t bytes;
    fp8_moe_plan_size(1, 1, 1, 1, &bytes, NULL);
    fp8_buffer_create(dev, 4, &ib);
    fp8_buffer_write(ib, 0, &zero, 4);
    fp8_buffer_create(dev, bytes, &pb);
    fp8_moe_group_desc g = {.ids = {.buffer = ib, .dtype = FP8_I32}, .plan = {.buffer = pb, .m = 1, .top_k = 1, .experts = 1, .row_align = 1}};
    const fp8_status st = fp8_moe_group(dev, &g);
    fp8_buffer_free(ib);
    fp8_buffer_free(pb);
    unsetenv("FP8_CL_MOE_KERNEL");
    if (st == FP8_ERR_UNSUPPORTED) {
        fp8_device_close(dev);
        return NULL;
    }
    CHECK_STATUS(st, FP8_OK);
    CHECK_STATUS(fp8_device_synchronize(dev), FP8_OK);
    return dev;
}

int main(void)
{
    /* Data errors below are expected: keep the log quiet (FP8_TEST_VERBOSE=1 shows it). */
    fp8_context_options opts = {.log = getenv("FP8_TEST_VERBOSE") ? test_log : NULL,
                                .disable_backends = 1u << FP8_BACKEND_VULKAN};
    CHECK_STATUS(fp8_context_create(&opts, &g_ctx), FP8_OK);
    const uint32_t idx = test_find_opencl_device(g_ctx);
    uint32_t cpu = 0;
    fp8_device_filter fc = {.backend = FP8_BACKEND_CPU};
    CHECK_STATUS(fp8_context_find_device(g_ctx, &fc, &cpu), FP8_OK);
    CHECK_STATUS(fp8_device_open(g_ctx, cpu, &g_cpu), FP8_OK);
    for (int i = 0; i < 3; i++) g_cl[i] = open_cl(idx, i == 0 ? NULL : g_cl_name[i]);
    if (!g_cpu || !g_cl[0] || !g_cl[1] || !g_cl[2]) {
        fp8_context_destroy(g_ctx);
        if (!test_failures) test_skip("MoE is not available on the OpenCL device");
        return test_finish("cl_moe");
    }
    fp8_device_info info;
    fp8_device_get_info(g_cl[0], &info, NULL);
    printf("OpenCL device: %s (%s)\n", info.name, info.api_version);

    for (size_t c = 0; c < sizeof gcases / sizeof gcases[0]; c++)
        for (int k = 0; k < 3; k++) run_gemm_case(&gcases[c], k);
    test_route_large(g_cl[0]);
    test_group_large(g_cl[0]);
    test_quantize(g_cl[0]);
    test_quantize_plan(g_cl[0]);
    test_error_word(g_cl[0]);
    test_fuzz(g_cl[1], "gemv");
    test_fuzz(g_cl[2], "tiled");

    for (int i = 0; i < 3; i++) fp8_device_close(g_cl[i]);
    fp8_device_close(g_cpu);
    fp8_context_destroy(g_ctx);
    return test_finish("cl_moe");
}
