/* Every Vulkan GEMM path against the CPU oracle on the same descriptor: every weight dtype, scale layouts and
 * scale dtypes, f32/f16/bf16/FP8 activations, f32/f16/bf16 output, bias, padded strides, odd offsets, shapes
 * that are not multiples of tiles or blocks, both decoders. Paths the device cannot run print SKIP with the
 * reason. The validation layer (FP8_VK_VALIDATION=1) must stay silent. */
#include "test_util.h"

#include "vulkan/vk_internal.h"

#include <math.h>
#include <string.h>

static fp8_context *ctx;
static fp8_device *vk, *cpu;
static int runs, skipped_paths;

typedef struct gcase {
    const char *name;
    uint32_t n, k;
    fp8_dtype w, x, y, bias;           /* bias 0: none */
    fp8_scale_layout ws, xs;
    float w_ts, x_ts;
    uint32_t w_pad, x_pad, y_pad;      /* extra elements per row (strides) */
    uint32_t w_off, x_off, y_off;      /* byte offsets (multiples of the element size) */
    bool zero_w_scales;                /* every third weight scale zero (blocks that contribute nothing) */
    bool nan_w;                        /* NaN codes in two weight rows: those columns of Y must be NaN */
} gcase;

static size_t esize(fp8_dtype d) { return d == FP8_E2M1 ? 1 : fp8_dtype_bits(d) / 8; }

static bool is_quant(fp8_dtype d) { return d >= FP8_E4M3FN && d <= FP8_E2M1; }

/* A random code of a quantized dtype that decodes to a finite value: subnormals, zeros and the extremes too. */
static uint32_t random_code(test_rng *r, fp8_dtype d, float limit)
{
    for (;;) {
        uint32_t c = (uint32_t)test_rng_next(r) & (d == FP8_E2M1 ? 0xF : 0xFF);
        float v = fp8_decode_value(d, c);
        if (isfinite(v) && fabsf(v) <= limit) return c;
    }
}

static float random_scale(test_rng *r, fp8_dtype d)
{
    if (d == FP8_E8M0) return fp8_decode_value(d, 124 + (uint32_t)(test_rng_next(r) % 7));
    if (d == FP8_E4M3FN) return fp8_decode_value(d, (5 + (uint32_t)(test_rng_next(r) % 5)) << 3 | (uint32_t)(test_rng_next(r) % 8));
    return ldexpf(test_rng_uniform(r, 0.5f, 1.0f), (int)(test_rng_next(r) % 5) - 2);
}

/* The NaN code of an FP8 dtype (E2M1 has none: 0). */
static uint8_t nan_code(fp8_dtype d)
{
    return d == FP8_E4M3FN ? 0x7F : d == FP8_E5M2 ? 0x7E : d == FP8_E4M3FNUZ || d == FP8_E5M2FNUZ ? 0x80 : 0;
}

/* Weight rows that hold a NaN code in a nan_w case: the second and the second to last. */
static bool nan_row(const gcase *c, uint32_t n) { return c->nan_w && (n == 1 || n == c->n - 2); }

/* Host image of a rows x cols matrix at byte offset `off` with `pad` extra elements per row. */
static uint8_t *make_matrix(test_rng *r, fp8_dtype d, uint32_t rows, uint32_t cols, uint32_t pad, uint32_t off,
                            float limit, size_t *bytes)
{
    const size_t stride = (size_t)cols + pad;
    size_t data = 0;
    fp8_dtype_storage_size(d, (size_t)(rows - 1) * stride + cols, &data);
    *bytes = off + data + 3;
    uint8_t *h = calloc(1, *bytes);
    for (uint32_t i = 0; i < rows; i++)
        for (uint32_t j = 0; j < cols; j++) {
            size_t idx = (size_t)i * stride + j;
            if (is_quant(d)) {
                uint32_t c = random_code(r, d, limit);
                if (d == FP8_E2M1) h[off + idx / 2] |= (uint8_t)(c << (4 * (idx & 1)));
                else h[off + idx] = (uint8_t)c;
            } else {
                float v = test_rng_normal(r);
                uint32_t code = fp8_encode_value(d, v, FP8_OVERFLOW_SATURATE);
                memcpy(h + off + idx * esize(d), &code, esize(d));
            }
        }
    return h;
}

static uint8_t *make_scales(test_rng *r, const fp8_scale_layout *l, uint32_t rows, uint32_t cols, size_t *bytes,
                            size_t *offset)
{
    size_t count = 0;
    if (l->kind == FP8_SCALE_NONE || fp8_scale_count(l, rows, cols, &count) != FP8_OK) { *bytes = 0; return NULL; }
    fp8_dtype d = l->dtype ? l->dtype : FP8_F32;
    *offset = 2 * esize(d); /* never at the start of the buffer */
    *bytes = *offset + count * esize(d);
    uint8_t *h = calloc(1, *bytes);
    for (size_t i = 0; i < count; i++) {
        float v = random_scale(r, d);
        uint32_t code = fp8_encode_value(d, v, FP8_OVERFLOW_SATURATE);
        memcpy(h + *offset + i * esize(d), &code, esize(d));
    }
    return h;
}

static fp8_buffer *upload(fp8_device *dev, const uint8_t *h, size_t n)
{
    fp8_buffer *b = NULL;
    if (!h || !n) return NULL;
    CHECK_STATUS(fp8_buffer_create(dev, n, &b), FP8_OK);
    if (b) CHECK_STATUS(fp8_buffer_write(b, 0, h, n), FP8_OK);
    return b;
}

typedef struct host_operands {
    uint8_t *w, *x, *ws, *xs, *bias;
    size_t w_n, x_n, ws_n, xs_n, bias_n, ws_off, xs_off;
} host_operands;

/* Fill a descriptor for `dev`; `y_dtype`/`y` override the case's output (the oracle writes f32). */
static void make_desc(fp8_device *dev, const gcase *c, uint32_t m, const host_operands *h, fp8_buffer **bufs,
                      fp8_dtype y_dtype, uint32_t y_pad, uint32_t y_off, size_t y_bytes, fp8_gemm_desc *d)
{
    memset(d, 0, sizeof *d);
    d->m = m; d->n = c->n; d->k = c->k;
    bufs[0] = upload(dev, h->w, h->w_n);
    bufs[1] = upload(dev, h->ws, h->ws_n);
    bufs[2] = upload(dev, h->x, h->x_n);
    bufs[3] = upload(dev, h->xs, h->xs_n);
    bufs[4] = upload(dev, h->bias, h->bias_n);
    bufs[5] = NULL;
    CHECK_STATUS(fp8_buffer_create(dev, y_bytes, &bufs[5]), FP8_OK);
    d->w = (fp8_operand){bufs[0], c->w_off, c->w, c->k + c->w_pad};
    d->w_scales = (fp8_scales){c->ws, bufs[1], h->ws_off, c->w_ts};
    d->x = (fp8_operand){bufs[2], c->x_off, c->x, c->k + c->x_pad};
    d->x_scales = (fp8_scales){c->xs, bufs[3], h->xs_off, c->x_ts};
    if (c->bias) d->bias = (fp8_operand){bufs[4], 2 * esize(c->bias), c->bias, 0};
    d->y = (fp8_operand){bufs[5], y_off, y_dtype, c->n + y_pad};
}

static void free_bufs(fp8_buffer **b)
{
    for (int i = 0; i < 6; i++) fp8_buffer_free(b[i]);
}

/* Paths whose operands pass through fp16 (the cooperative-matrix kernels). */
static bool fp16_operand_path(fp8_path p)
{
    return p == FP8_PATH_VK_GEMM_NV_COOPMAT || p == FP8_PATH_VK_GEMM_KHR_COOPMAT || p == FP8_PATH_VK_GEMM_NV_COOPMAT2;
}

static double tolerance(const gcase *c, fp8_path path)
{
    double t = 1e-5; /* exact decode, fp32 accumulation, f32 output */
    if (c->y == FP8_F16) t = 2e-3;
    if (c->y == FP8_BF16) t = 4e-3; /* bf16 rounding alone is up to 2^-9 relative */
    if (fp16_operand_path(path)) t = t > 2e-3 ? t : 2e-3;
    return t;
}

/* The coopmat2 build refuses bf16 output and a Y base off 16 bytes (its tensor store): there the front door's AUTO
 * choice must fall back to another GEMM kernel (never the GEMV for prefill M), and that is what runs and is
 * checked. Returns the path that will run. */
static fp8_path fallback_if_refused(fp8_gemm_desc *dv, const char *name, uint32_t m)
{
    fp8_path ran = dv->path;
    if (dv->path == FP8_PATH_AUTO) {
        CHECK_STATUS(fp8_gemm_select_path(vk, dv, &ran), FP8_OK);
        return ran;
    }
    if (dv->path != FP8_PATH_VK_GEMM_NV_COOPMAT2 || fp8_gemm_select_path(vk, dv, &ran) != FP8_ERR_UNSUPPORTED) return ran;
    dv->path = FP8_PATH_AUTO;
    CHECK_STATUS(fp8_gemm_select_path(vk, dv, &ran), FP8_OK);
    CHECK(ran != FP8_PATH_VK_GEMM_NV_COOPMAT2 && (ran != FP8_PATH_VK_GEMV || m <= 16),
          "%s M=%u: coopmat2 refused, AUTO chose %s", name, m, fp8_path_name(ran));
    printf("%-28s M=%-3u coopmat2 cannot take these operands; AUTO runs %s\n", name, m, fp8_path_name(ran));
    return ran;
}

static int skipped_cases;

static void run_case(const gcase *c, uint32_t m, fp8_path path, uint64_t seed)
{
    /* llvmpipe ends a shader's loops after 65535 iterations counted over all of them (Mesa's
     * LP_MAX_TGSI_LOOP_ITERATIONS), and the cooperative-matrix kernels' plain-FMA twin (FP8_VK_EMULATE_COOPMAT)
     * runs K times an invocation's outputs (32 or more) of them: from K = 2048 on its sums lose most of K there
     * (test_moe_vk says the same). Those rows are for GPUs. */
    fp8_device_info info;
    if (fp16_operand_path(path) && getenv("FP8_VK_EMULATE_COOPMAT") && c->k > 1024 &&
        fp8_device_get_info(vk, &info, NULL) == FP8_OK && info.type == FP8_DEVICE_CPU) {
        printf("SKIP: %s M=%u %s: K = %u exceeds what the emulated kernel's loops run on %s\n", c->name, m,
               fp8_path_name(path), c->k, info.name);
        skipped_cases++;
        return;
    }
    test_rng r = {seed * 2654435761u + m};
    host_operands h = {0};
    /* f16 outputs, and the fp16 operands of the cooperative-matrix paths, overflow past 65504: keep their inputs
     * moderate (as real weights and activations are); elsewhere every finite code may appear. */
    const bool fp16_operands = fp16_operand_path(path);
    const float limit = c->y == FP8_F16 || fp16_operands ? 16.0f : INFINITY;
    h.w = make_matrix(&r, c->w, c->n, c->k, c->w_pad, c->w_off, limit, &h.w_n);
    h.x = make_matrix(&r, c->x, m, c->k, c->x_pad, c->x_off, limit, &h.x_n);
    h.ws = make_scales(&r, &c->ws, c->n, c->k, &h.ws_n, &h.ws_off);
    h.xs = make_scales(&r, &c->xs, m, c->k, &h.xs_n, &h.xs_off);
    if (c->zero_w_scales && h.ws) {
        const size_t e = esize(c->ws.dtype);
        for (size_t at = h.ws_off + e; at + e <= h.ws_n; at += 3 * e) memset(h.ws + at, 0, e);
    }
    if (c->bias) h.bias = make_matrix(&r, c->bias, 1, c->n, 0, 2 * (uint32_t)esize(c->bias), limit, &h.bias_n);
    if (c->nan_w) { /* one NaN in a 16-byte unit of finite codes, one in the last K tail */
        h.w[c->w_off + (size_t)1 * (c->k + c->w_pad) + 5] = nan_code(c->w);
        h.w[c->w_off + (size_t)(c->n - 2) * (c->k + c->w_pad) + c->k - 3] = (uint8_t)(0x80 | nan_code(c->w));
    }

    /* Output with a sentinel around the matrix: nothing outside it may change. */
    const size_t ye = esize(c->y), ystride = c->n + c->y_pad;
    const size_t y_bytes = c->y_off + ((size_t)(m - 1) * ystride + c->n) * ye + 16;
    uint8_t *sentinel = malloc(y_bytes), *yv = malloc(y_bytes);
    memset(sentinel, 0x5A, y_bytes);

    fp8_buffer *vb[6], *cb[6];
    fp8_gemm_desc dv, dc;
    make_desc(vk, c, m, &h, vb, c->y, c->y_pad, c->y_off, y_bytes, &dv);
    make_desc(cpu, c, m, &h, cb, FP8_F32, 0, 0, (size_t)m * c->n * 4, &dc);
    if (vb[5]) fp8_buffer_write(vb[5], 0, sentinel, y_bytes);
    dv.path = path;
    /* FP8_PATH=<this path>: go through the front door's AUTO choice instead, which must honour it. */
    const char *forced = getenv("FP8_PATH");
    fp8_path chosen = FP8_PATH_AUTO;
    if (forced && strcmp(forced, fp8_path_name(path)) == 0 && fp8_gemm_select_path(vk, &dv, &chosen) == FP8_OK) {
        dv.path = FP8_PATH_AUTO; /* (where the path refuses these operands, the fallback below is checked) */
        CHECK_STATUS(fp8_gemm_select_path(vk, &dv, &chosen), FP8_OK);
        CHECK(chosen == path, "FP8_PATH=%s but AUTO chose %s", forced, fp8_path_name(chosen));
    }
    dc.path = FP8_PATH_CPU_REFERENCE;
    const fp8_path ran = fallback_if_refused(&dv, c->name, m);

    fp8_status st = fp8_gemm(vk, &dv);
    CHECK(st == FP8_OK, "%s M=%u %s: fp8_gemm returned %s", c->name, m, fp8_path_name(path), fp8_status_name(st));
    CHECK_STATUS(fp8_gemm(cpu, &dc), FP8_OK);
    float *ref32 = malloc((size_t)m * c->n * 4);
    double *ref = malloc((size_t)m * c->n * sizeof(double));
    float *got = malloc((size_t)m * c->n * 4);
    if (st == FP8_OK && vb[5] && cb[5]) {
        CHECK_STATUS(fp8_buffer_read(vb[5], 0, yv, y_bytes), FP8_OK);
        CHECK_STATUS(fp8_buffer_read(cb[5], 0, ref32, (size_t)m * c->n * 4), FP8_OK);
        int nan = 0, outside = 0, lost_nan = 0;
        uint8_t *mask = calloc(1, y_bytes);
        for (uint32_t i = 0; i < m; i++)
            for (uint32_t j = 0; j < c->n; j++) {
                size_t at = c->y_off + ((size_t)i * ystride + j) * ye;
                memset(mask + at, 1, ye);
                uint32_t code = 0;
                memcpy(&code, yv + at, ye);
                got[(size_t)i * c->n + j] = fp8_decode_value(c->y, code);
                ref[(size_t)i * c->n + j] = ref32[(size_t)i * c->n + j];
                if (nan_row(c, j)) { /* NaN expected (the oracle's too): compared as zeros below */
                    lost_nan += !isnan(got[(size_t)i * c->n + j]) || !isnan(ref[(size_t)i * c->n + j]);
                    got[(size_t)i * c->n + j] = 0.0f;
                    ref[(size_t)i * c->n + j] = 0.0;
                    continue;
                }
                nan += isnan(got[(size_t)i * c->n + j]) != 0;
            }
        for (size_t i = 0; i < y_bytes; i++) outside += !mask[i] && yv[i] != 0x5A;
        free(mask);
        double err = test_rel_frobenius(got, ref, (size_t)m * c->n);
        double tol = tolerance(c, ran);
        CHECK(nan == 0, "%s M=%u %s: %d NaN outputs", c->name, m, fp8_path_name(path), nan);
        CHECK(lost_nan == 0, "%s M=%u %s: %d outputs of NaN weight rows not NaN", c->name, m, fp8_path_name(path), lost_nan);
        CHECK(outside == 0, "%s M=%u %s: %d bytes outside Y changed", c->name, m, fp8_path_name(path), outside);
        CHECK(err <= tol, "%s M=%u N=%u K=%u %s: relative error %.3g > %.3g (y[0] %g vs %g)", c->name, m, c->n, c->k,
              fp8_path_name(path), err, tol, got[0], ref[0]);
        if (getenv("FP8_TEST_VERBOSE"))
            printf("%-28s M=%-3u %-20s err %.2e\n", c->name, m, fp8_path_name(path), err);
    }
    runs++;
    free(ref32); free(ref); free(got); free(sentinel); free(yv);
    free_bufs(vb);
    free_bufs(cb);
    free(h.w); free(h.x); free(h.ws); free(h.xs); free(h.bias);
}

#define BLOCK(br, bc, dt) {FP8_SCALE_BLOCK, dt, br, bc}
#define ROWS(dt) {FP8_SCALE_ROW, dt, 0, 0}
#define NONE {FP8_SCALE_NONE, 0, 0, 0}

static const gcase cases[] = {
    {"e4m3 128x128 f32 x32 y32 bias", 160, 256, FP8_E4M3FN, FP8_F32, FP8_F32, FP8_F32, BLOCK(128, 128, FP8_F32), NONE, 0, 0, 0, 0, 0, 0, 0, 0, false, false},
    {"e4m3 row x16 y16 strided", 33, 200, FP8_E4M3FN, FP8_F16, FP8_F16, FP8_F16, ROWS(FP8_F32), NONE, 0, 0, 8, 5, 3, 16, 6, 4, false, false},
    {"e5m2 tensor xbf16 ybf16", 40, 96, FP8_E5M2, FP8_BF16, FP8_BF16, FP8_BF16, {FP8_SCALE_TENSOR, FP8_F32, 0, 0}, NONE, 0.75f, 0, 0, 0, 0, 0, 0, 0, false, false},
    {"e4m3fnuz col x32 odd", 17, 50, FP8_E4M3FNUZ, FP8_F32, FP8_F32, 0, {FP8_SCALE_COL, FP8_F32, 0, 0}, NONE, 0, 0, 1, 1, 0, 3, 4, 0, false, false},
    {"e5m2fnuz none x16 y32", 24, 64, FP8_E5M2FNUZ, FP8_F16, FP8_F32, 0, NONE, NONE, 0.5f, 0, 0, 0, 0, 0, 0, 0, false, false},
    {"mxfp4 1x32 e8m0 x32", 33, 200, FP8_E2M1, FP8_F32, FP8_F32, FP8_BF16, BLOCK(1, 32, FP8_E8M0), NONE, 0, 0, 0, 0, 0, 0, 0, 0, false, false},
    {"nvfp4 1x16 e4m3 x16 y16", 33, 200, FP8_E2M1, FP8_F16, FP8_F16, 0, BLOCK(1, 16, FP8_E4M3FN), NONE, 0.125f, 0, 2, 0, 1, 1, 0, 2, false, false},
    {"w8a8 e4m3 128x128 / 1x128", 64, 384, FP8_E4M3FN, FP8_E4M3FN, FP8_F32, 0, BLOCK(128, 128, FP8_F32), BLOCK(1, 128, FP8_F32), 0, 0, 0, 0, 0, 0, 0, 0, false, false},
    {"w8a8 e5m2 row / token", 48, 130, FP8_E5M2, FP8_E5M2, FP8_F32, FP8_F32, ROWS(FP8_F32), ROWS(FP8_F32), 0, 2.0f, 0, 3, 0, 0, 5, 0, false, false},
    /* K >= 8192 at one token: the GEMV's long-row shapes (block scales, and one scale per row). */
    {"e4m3 128x128 long rows x16", 24, 8256, FP8_E4M3FN, FP8_F16, FP8_F32, 0, BLOCK(128, 128, FP8_F32), NONE, 0, 0, 0, 0, 0, 0, 0, 0, false, false},
    {"e4m3 channel long rows x16", 20, 8256, FP8_E4M3FN, FP8_F16, FP8_F16, 0, ROWS(FP8_F32), NONE, 0, 0, 0, 0, 0, 0, 0, 0, false, false},
    {"e4m3 block 3x20 e8m0", 35, 70, FP8_E4M3FN, FP8_F32, FP8_F32, 0, BLOCK(3, 20, FP8_E8M0), NONE, 0, 0, 0, 0, 0, 0, 0, 0, false, false},
    {"e4m3 unaligned w/x", 20, 96, FP8_E4M3FN, FP8_F32, FP8_F32, 0, BLOCK(1, 32, FP8_F32), NONE, 0, 0, 1, 2, 0, 7, 4, 0, false, false},
    {"w8a8 e4m3fnuz block 1x48", 19, 144, FP8_E4M3FN, FP8_E4M3FNUZ, FP8_F16, 0, ROWS(FP8_E8M0), BLOCK(1, 48, FP8_F32), 0, 0, 0, 0, 0, 0, 3, 0, false, false},
    /* Blocks whose scale is zero, first in some rows of blocks: the accumulator rescaling must skip them. */
    {"e4m3 32x64 some zero scales", 96, 320, FP8_E4M3FN, FP8_F16, FP8_F32, 0, BLOCK(32, 64, FP8_F32), NONE, 0, 0, 0, 0, 0, 0, 0, 0, true, false},
    /* NaN weight codes: each decoder's test for codes its bit moves cannot express (128 rows: whole 128x128
     * blocks, so that the cooperative-matrix kernels decode them as raw fp16 bits). */
    {"e4m3 NaN codes 128x128 x16", 128, 256, FP8_E4M3FN, FP8_F16, FP8_F32, 0, BLOCK(128, 128, FP8_F32), NONE, 0, 0, 0, 0, 0, 0, 0, 0, false, true},
    {"e4m3fnuz NaN codes row y16", 40, 96, FP8_E4M3FNUZ, FP8_F32, FP8_F16, 0, ROWS(FP8_F32), NONE, 0, 0, 0, 0, 0, 0, 0, 0, false, true},
    {"e5m2 NaN codes x16", 24, 64, FP8_E5M2, FP8_F16, FP8_F32, 0, NONE, NONE, 0, 0, 0, 0, 0, 0, 0, 0, false, true},
};

/* Larger shapes for real GPUs (FP8_TEST_LARGE=1): N = K = 4096, M up to 512, compared on sampled rows of Y (the
 * oracle recomputes only those tokens). Activation scales here are per token, so their rows follow the sample. */
static const gcase large_cases[] = {
    {"large e4m3 128x128 x16 y32", 4096, 4096, FP8_E4M3FN, FP8_F16, FP8_F32, 0, BLOCK(128, 128, FP8_F32), NONE, 0, 0, 0, 0, 0, 0, 0, 0, false, false},
    {"large e4m3 channel x32 y16", 4096, 4096, FP8_E4M3FN, FP8_F32, FP8_F16, FP8_F16, ROWS(FP8_F32), NONE, 0, 0, 0, 0, 0, 0, 0, 0, false, false},
    {"large mxfp4 x16 ybf16", 4096, 4096, FP8_E2M1, FP8_F16, FP8_BF16, 0, BLOCK(1, 32, FP8_E8M0), NONE, 0, 0, 0, 0, 0, 0, 0, 0, false, false},
    {"large nvfp4 x16 y16", 4096, 4096, FP8_E2M1, FP8_F16, FP8_F16, 0, BLOCK(1, 16, FP8_E4M3FN), NONE, 0.25f, 0, 0, 0, 0, 0, 0, 0, false, false},
    {"large w8a8 1x128", 4096, 4096, FP8_E4M3FN, FP8_E4M3FN, FP8_F32, 0, BLOCK(128, 128, FP8_F32), BLOCK(1, 128, FP8_F32), 0, 0, 0, 0, 0, 0, 0, 0, false, false},
};

static void run_large(const gcase *c, uint32_t m, fp8_path path, uint64_t seed)
{
    test_rng r = {seed};
    const float limit = c->y == FP8_F16 ? 16.0f : INFINITY;
    host_operands h = {0};
    h.w = make_matrix(&r, c->w, c->n, c->k, 0, 0, limit, &h.w_n);
    h.x = make_matrix(&r, c->x, m, c->k, 0, 0, limit, &h.x_n);
    h.ws = make_scales(&r, &c->ws, c->n, c->k, &h.ws_n, &h.ws_off);
    h.xs = make_scales(&r, &c->xs, m, c->k, &h.xs_n, &h.xs_off);
    if (c->bias) h.bias = make_matrix(&r, c->bias, 1, c->n, 0, 2 * (uint32_t)esize(c->bias), limit, &h.bias_n);
    const uint32_t want[4] = {0, 7, m / 2, m - 1};
    uint32_t rows[4], nr = 0;
    for (int i = 0; i < 4; i++) {
        bool dup = want[i] >= m;
        for (uint32_t j = 0; j < nr; j++) dup |= rows[j] == want[i];
        if (!dup) rows[nr++] = want[i];
    }
    /* The sampled tokens as their own small activation (and per-token scale) tensors. */
    host_operands hs = h;
    size_t xrow = 0, xsrow = 0;
    fp8_dtype_storage_size(c->x, c->k, &xrow);
    hs.x_n = xrow * nr + 3;
    hs.x = calloc(1, hs.x_n);
    for (uint32_t i = 0; i < nr; i++) memcpy(hs.x + i * xrow, h.x + (size_t)rows[i] * xrow, xrow);
    if (h.xs) {
        xsrow = (h.xs_n - h.xs_off) / m;
        hs.xs_n = h.xs_off + xsrow * nr;
        hs.xs = calloc(1, hs.xs_n);
        for (uint32_t i = 0; i < nr; i++) memcpy(hs.xs + h.xs_off + i * xsrow, h.xs + h.xs_off + (size_t)rows[i] * xsrow, xsrow);
    }
    const size_t ye = esize(c->y), y_bytes = (size_t)m * c->n * ye;
    fp8_buffer *vb[6], *cb[6];
    fp8_gemm_desc dv, dc;
    make_desc(vk, c, m, &h, vb, c->y, 0, 0, y_bytes, &dv);
    make_desc(cpu, c, nr, &hs, cb, FP8_F32, 0, 0, (size_t)nr * c->n * 4, &dc);
    dv.path = path;
    dc.path = FP8_PATH_CPU_REFERENCE;
    const fp8_path ran = fallback_if_refused(&dv, c->name, m);
    fp8_status st = fp8_gemm(vk, &dv);
    CHECK(st == FP8_OK, "%s M=%u %s: %s", c->name, m, fp8_path_name(path), fp8_status_name(st));
    CHECK_STATUS(fp8_gemm(cpu, &dc), FP8_OK);
    float *ref32 = malloc((size_t)nr * c->n * 4), *got = malloc((size_t)nr * c->n * 4);
    double *ref = malloc((size_t)nr * c->n * sizeof(double));
    uint8_t *yrow = malloc((size_t)c->n * ye);
    if (st == FP8_OK) {
        CHECK_STATUS(fp8_buffer_read(cb[5], 0, ref32, (size_t)nr * c->n * 4), FP8_OK);
        int nan = 0;
        for (uint32_t i = 0; i < nr; i++) {
            CHECK_STATUS(fp8_buffer_read(vb[5], (size_t)rows[i] * c->n * ye, yrow, (size_t)c->n * ye), FP8_OK);
            for (uint32_t j = 0; j < c->n; j++) {
                uint32_t code = 0;
                memcpy(&code, yrow + j * ye, ye);
                got[(size_t)i * c->n + j] = fp8_decode_value(c->y, code);
                ref[(size_t)i * c->n + j] = ref32[(size_t)i * c->n + j];
                nan += isnan(got[(size_t)i * c->n + j]) != 0;
            }
        }
        double err = test_rel_frobenius(got, ref, (size_t)nr * c->n);
        CHECK(nan == 0, "%s M=%u %s: %d NaN outputs", c->name, m, fp8_path_name(path), nan);
        CHECK(err <= tolerance(c, ran), "%s M=%u %s: relative error %.3g > %.3g", c->name, m, fp8_path_name(ran), err,
              tolerance(c, ran));
        printf("%-30s M=%-4u %-20s %u rows checked, err %.2e\n", c->name, m, fp8_path_name(path), nr, err);
    }
    runs++;
    free(ref32); free(got); free(ref); free(yrow);
    free_bufs(vb);
    free_bufs(cb);
    free(h.w); free(h.x); free(h.ws); free(h.xs); free(h.bias); free(hs.x); free(hs.xs);
}

/* FP8_OK where this device runs `path` at all, else why not: asks the front door with a trivial descriptor. */
static fp8_status path_status(fp8_path path)
{
    fp8_gemm_desc probe;
    host_operands h = {0};
    test_rng r = {1};
    h.w = make_matrix(&r, FP8_E4M3FN, 16, 32, 0, 0, INFINITY, &h.w_n);
    h.x = make_matrix(&r, FP8_F32, 1, 32, 0, 0, INFINITY, &h.x_n);
    gcase c0 = {"probe", 16, 32, FP8_E4M3FN, FP8_F32, FP8_F32, 0, NONE, NONE, 0, 0, 0, 0, 0, 0, 0, 0, false, false};
    fp8_buffer *b[6];
    make_desc(vk, &c0, 1, &h, b, FP8_F32, 0, 0, 64, &probe);
    probe.path = path;
    fp8_path chosen;
    fp8_status st = fp8_gemm_select_path(vk, &probe, &chosen);
    free_bufs(b);
    free(h.w);
    free(h.x);
    return st;
}

static void run_path(fp8_path path)
{
    static const uint32_t ms[] = {1, 3, 16, 67};
    const fp8_status st = path_status(path);
    if (st != FP8_OK) {
        fp8_device_info info;
        fp8_device_get_info(vk, &info, NULL);
        printf("SKIP: path %s: not available on %s (%s)\n", fp8_path_name(path), info.name,
               fp16_operand_path(path)
                   ? "no fp16 cooperative matrix of this kind on this device, or the shader is not in this build"
                   : fp8_status_name(st));
        skipped_paths++;
        return;
    }
    const char *only = getenv("FP8_TEST_CASE");
    if (getenv("FP8_TEST_LARGE")) {
        static const uint32_t lms[] = {1, 16, 512};
        const char *nk = getenv("FP8_TEST_LARGE_NK"); /* override N = K (smaller for a CPU device) */
        for (size_t i = 0; i < sizeof large_cases / sizeof large_cases[0]; i++) {
            gcase c = large_cases[i];
            if (nk && atoi(nk) > 0) c.n = c.k = (uint32_t)atoi(nk);
            for (size_t j = 0; j < sizeof lms / sizeof lms[0]; j++) run_large(&c, lms[j], path, 1000 + i);
        }
    }
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        if (only && !strstr(cases[i].name, only)) continue;
        for (size_t j = 0; j < sizeof ms / sizeof ms[0]; j++) run_case(&cases[i], ms[j], path, i + 1);
    }
}

/* Warnings that name FP8_VK_COOPMAT_TILE: a tile the device cannot run must be reported, not taken. */
static int tile_warnings;
static void counting_log(void *user, fp8_log_level level, const char *message)
{
    if (level >= FP8_LOG_WARN && strstr(message, "FP8_VK_COOPMAT_TILE")) tile_warnings++;
    test_log(user, level, message);
}

int main(void)
{
    fp8_context_options o = {.log = counting_log};
    if (fp8_context_create(&o, &ctx) != FP8_OK) test_skip("no context");
    uint32_t vi, ci;
    fp8_device_filter fv = {.backend = FP8_BACKEND_VULKAN}, fc = {.backend = FP8_BACKEND_CPU};
    if (fp8_context_find_device(ctx, &fv, &vi) != FP8_OK) {
        fp8_context_destroy(ctx);
        test_skip("no Vulkan device");
    }
    CHECK_STATUS(fp8_context_find_device(ctx, &fc, &ci), FP8_OK);
    if (fp8_device_open(ctx, vi, &vk) != FP8_OK) {
        fp8_context_destroy(ctx);
        test_skip("Vulkan device did not open");
    }
    CHECK_STATUS(fp8_device_open(ctx, ci, &cpu), FP8_OK);

    const char *only = getenv("FP8_TEST_PATH");
    const fp8_path paths[] = {FP8_PATH_VK_GEMV, FP8_PATH_VK_GEMM_TILED, FP8_PATH_VK_GEMM_NV_COOPMAT,
                              FP8_PATH_VK_GEMM_KHR_COOPMAT, FP8_PATH_VK_GEMM_NV_COOPMAT2};
    for (size_t p = 0; p < sizeof paths / sizeof paths[0]; p++) {
        if (only && strcmp(only, fp8_path_name(paths[p])) != 0) continue;
        run_path(paths[p]);
    }
    if (!only || strcmp(only, "vk_gemv") == 0) {
        /* Two tokens: the GEMV's own two-token shapes (E2M1 takes four rows a group there). */
        for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) run_case(&cases[i], 2, FP8_PATH_VK_GEMV, 500 + i);
        /* The scalar decoder (devices whose fp16 conversions flush denormals) on the GEMV path. */
        setenv("FP8_VK_EXACT_DECODE", "1", 1);
        for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) run_case(&cases[i], 3, FP8_PATH_VK_GEMV, 100 + i);
        unsetenv("FP8_VK_EXACT_DECODE");
        /* Other GEMV shapes: groups smaller than a row's loads, so that the unrolled rounds run here too, and
         * several groups sharing a workgroup's sixteen tokens (a CPU device otherwise takes one group). */
        setenv("FP8_VK_GEMV", "16,2,3,2", 1);
        setenv("FP8_VK_GEMV_BATCH", "8,4,2,2", 1);
        const uint32_t shape_ms[] = {2, 9, 16};
        for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
            run_case(&cases[i], shape_ms[i % 3], FP8_PATH_VK_GEMV, 400 + i);
        unsetenv("FP8_VK_GEMV");
        unsetenv("FP8_VK_GEMV_BATCH");
        /* And the shared-memory reduction of devices without subgroup arithmetic. */
        setenv("FP8_VK_NO_SUBGROUP", "1", 1);
        for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) run_case(&cases[i], 5, FP8_PATH_VK_GEMV, 200 + i);
        unsetenv("FP8_VK_NO_SUBGROUP");
    }

    /* Tiles the cooperative-matrix kernel must refuse: producer subgroups with one slice buffer (they write one
     * buffer while the others read the other), and more producers than a tile allows. Each call warns and runs
     * the default tile, whose result run_case checks. */
    const fp8_path coop = only && strcmp(only, "vk_gemm_khr_coopmat") == 0 ? FP8_PATH_VK_GEMM_KHR_COOPMAT
                                                                           : FP8_PATH_VK_GEMM_NV_COOPMAT;
    if (!only || strcmp(only, fp8_path_name(coop)) == 0) {
        const char *bad[] = {"2,4,4,2,16,1,4", "2,4,4,2,16,2,17"};
        const char *keep = getenv("FP8_VK_COOPMAT_TILE");
        char *saved = keep ? strdup(keep) : NULL;
        for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
            setenv("FP8_VK_COOPMAT_TILE", bad[i], 1);
            const int before = tile_warnings;
            if (path_status(coop) != FP8_OK) {
                printf("SKIP: refused tiles: path %s is not available here\n", fp8_path_name(coop));
                break;
            }
            run_case(&cases[0], 16, coop, 500 + i);
            CHECK(tile_warnings > before, "FP8_VK_COOPMAT_TILE=%s was not reported", bad[i]);
        }
        if (saved) setenv("FP8_VK_COOPMAT_TILE", saved, 1);
        else unsetenv("FP8_VK_COOPMAT_TILE");
        free(saved);
    }

    /* The tiled kernel's 128x128 blocks (8x8 per thread), which GPUs get for large M. */
    if (!only || strcmp(only, "vk_gemm_tiled") == 0) {
        setenv("FP8_VK_TILED_T", "8", 1);
        for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) run_case(&cases[i], 67, FP8_PATH_VK_GEMM_TILED, 300 + i);
        unsetenv("FP8_VK_TILED_T");
    }
    fp8_device_close(vk);
    fp8_device_close(cpu);
    CHECK(fp8i_vk_validation_errors(ctx) == 0, "%u validation errors", fp8i_vk_validation_errors(ctx));
    printf("%d GEMM runs compared with the CPU oracle, %d paths and %d cases skipped\n", runs, skipped_paths, skipped_cases);
    fp8_context_destroy(ctx);
    /* A filter that names nothing (a misspelt FP8_TEST_PATH or FP8_TEST_CASE) must not pass having checked
     * nothing; paths this device refuses are a skip with their reason printed above. */
    if (runs == 0 && skipped_paths > 0 && test_failures == 0) test_skip("every path it was asked for is refused here");
    CHECK(runs > 0, "no GEMM was compared: FP8_TEST_PATH=%s, FP8_TEST_CASE=%s", only ? only : "(unset)",
          getenv("FP8_TEST_CASE") ? getenv("FP8_TEST_CASE") : "(unset)");
    return test_finish("vk_gemm");
}
