/* fp8_moe_grouped_gemm and fp8_moe_combine on their own: every plan row against a per-row reference,
 * padding rows zero, rows past the plan untouched, per-expert bias, FP8 activations with per-token and
 * 1 x 32 scales (gathered and in plan order), dense mode; combine bit-exact in its documented order. */
#include "test_moe_ref.h"

#include <math.h>
#include <string.h>

#define NONE FP8_MOE_NONE
#define SENTINEL 12345.0f

/* How far an f32 sum of `terms` products may drift from the exact one: about one ulp of the sum of their
 * absolute values per term (a loose bound; the backends' sums come far closer), times the slope `abs_slope`
 * that carries it to the output. The kernels accumulate in f32 unless asked for more. */
static double f32_sum_room(int terms, double abs_slope) { return terms * 0x1p-24 * abs_slope; }

static fp8_context *ctx;
static fp8_device *dev;

static const fp8_scale_layout ROW_F32 = {.kind = FP8_SCALE_ROW, .dtype = FP8_F32};

/* Quantize host rows to E4M3 with F32 scales of 1 x block_cols (0: per row); returns dequantized values. */
static double *quantize_acts(const float *x, uint32_t rows, uint32_t cols, uint32_t block_cols, fp8_buffer **qb,
                             fp8_buffer **sb, fp8_scales *scales)
{
    fp8_scale_layout l = block_cols ? (fp8_scale_layout){.kind = FP8_SCALE_BLOCK, .dtype = FP8_F32, .block_rows = 1,
                                                         .block_cols = block_cols}
                                    : ROW_F32;
    size_t sc;
    fp8_scale_count(&l, rows, cols, &sc);
    uint8_t *q = malloc((size_t)rows * cols);
    float *s = malloc(sc * 4);
    fp8_quantize_desc d = {.rows = rows, .cols = cols, .src_dtype = FP8_F32, .src = x, .dst_dtype = FP8_E4M3FN, .dst = q,
                           .dst_bytes = (size_t)rows * cols, .scale_layout = l, .scale = s, .scale_bytes = sc * 4};
    CHECK_STATUS(fp8_quantize(&d), FP8_OK);
    double *deq = malloc((size_t)rows * cols * sizeof(double));
    const uint32_t bw = block_cols ? block_cols : cols, bpr = (cols + bw - 1) / bw;
    for (uint32_t r = 0; r < rows; r++)
        for (uint32_t c = 0; c < cols; c++)
            deq[(size_t)r * cols + c] = fp8_decode_value(FP8_E4M3FN, q[(size_t)r * cols + c]) * (double)s[r * bpr + c / bw];
    fp8_buffer_create(dev, (size_t)rows * cols, qb);
    fp8_buffer_write(*qb, 0, q, (size_t)rows * cols);
    fp8_buffer_create(dev, sc * 4, sb);
    fp8_buffer_write(*sb, 0, s, sc * 4);
    *scales = (fp8_scales){.layout = l, .buffer = *sb};
    free(q);
    free(s);
    return deq;
}

/* One grouped GEMM with a SwiGLU epilogue and an expert bias over a padded plan. */
static void test_grouped(int fp8_x, uint32_t block_cols, int gathered)
{
    const char *name = !fp8_x ? "f32 x" : gathered ? "fp8 x gathered" : "fp8 x in plan order";
    test_rng rng = {0x77 + (uint64_t)fp8_x * 3 + gathered};
    enum { M = 7, K = 2, E = 5, H = 64, N = 24, A = 4 };
    const uint32_t n_out = N / 2;
    int32_t ids[M * K];
    for (int t = 0; t < M; t++) { ids[t * K] = t % 3; ids[t * K + 1] = 3 + (t & 1); } /* experts 0..4; ... */
    ids[1] = 0; /* token 0 chooses expert 0 twice: caller ids may repeat */
    ref_experts w;
    CHECK_STATUS(ref_experts_make(dev, &rng, E, N, H, FP8_E4M3FN, ROW_F32, 0.125f, 8, &w), FP8_OK);
    float bias[E * N];
    for (int i = 0; i < E * N; i++) bias[i] = test_rng_uniform(&rng, -0.5f, 0.5f);
    fp8_buffer *bb = ref_upload(dev, FP8_F32, bias, E * N);
    w.w.bias = (fp8_operand){.buffer = bb, .dtype = FP8_F32};

    size_t pbytes;
    uint32_t R;
    CHECK_STATUS(fp8_moe_plan_size(M, K, E, A, &pbytes, &R), FP8_OK);
    fp8_buffer *ib = NULL, *pb = NULL, *yb = NULL;
    fp8_buffer_create(dev, sizeof ids, &ib);
    fp8_buffer_write(ib, 0, ids, sizeof ids);
    fp8_buffer_create(dev, pbytes, &pb);
    const fp8_moe_plan plan = {.buffer = pb, .m = M, .top_k = K, .experts = E, .row_align = A};
    fp8_moe_group_desc gd = {.ids = {.buffer = ib, .dtype = FP8_I32}, .plan = plan};
    CHECK_STATUS(fp8_moe_group(dev, &gd), FP8_OK);
    uint32_t *pw = malloc(pbytes);
    fp8_buffer_read(pb, 0, pw, pbytes);
    const uint32_t total = pw[7];
    const uint32_t *row_token = pw + 16 + E + E + 1 + E;
    const uint32_t *offsets = pw + 16 + E;

    /* Activations: tokens [M, H] when gathered, else already in plan order [R, H]. */
    const uint32_t xrows = gathered ? M : R;
    float *x = calloc((size_t)xrows * H, 4);
    for (uint32_t r = 0; r < xrows; r++) {
        if (!gathered && (r >= total || row_token[r] == NONE)) {
            /* Padding and unused rows are never read: NaN there would show (FP8 input must quantize, so 0). */
            x[(size_t)r * H] = fp8_x ? 0.0f : NAN;
            continue;
        }
        for (int c = 0; c < H; c++) x[(size_t)r * H + c] = test_rng_normal(&rng);
    }
    fp8_buffer *xb = NULL, *xsb = NULL;
    fp8_scales xs = {0};
    double *xd;
    if (fp8_x) {
        xd = quantize_acts(x, xrows, H, block_cols, &xb, &xsb, &xs);
    } else {
        xb = ref_upload(dev, FP8_F32, x, (size_t)xrows * H);
        xd = malloc((size_t)xrows * H * sizeof(double));
        for (size_t i = 0; i < (size_t)xrows * H; i++) xd[i] = x[i];
    }
    float *y = malloc((size_t)R * n_out * 4);
    for (size_t i = 0; i < (size_t)R * n_out; i++) y[i] = SENTINEL;
    yb = ref_upload(dev, FP8_F32, y, (size_t)R * n_out);
    fp8_moe_gemm_desc d = {.plan = plan, .n = N, .k = H, .weights = w.w,
                           .x = {.buffer = xb, .dtype = fp8_x ? FP8_E4M3FN : FP8_F32}, .x_scales = xs,
                           .x_gathered = (uint32_t)gathered, .activation = FP8_MOE_ACT_SWIGLU,
                           .y = {.buffer = yb, .dtype = FP8_F32}};
    CHECK_STATUS(fp8_moe_grouped_gemm(dev, &d), FP8_OK);
    ref_download(yb, 0, FP8_F32, (size_t)R * n_out, y);

    uint32_t checked = 0;
    for (uint32_t e = 0; e < E; e++)
        for (uint32_t r = offsets[e]; r < offsets[e + 1]; r++) {
            if (row_token[r] == NONE) {
                for (uint32_t c = 0; c < n_out; c++) CHECK(y[(size_t)r * n_out + c] == 0.0f, "%s: padding row %u not zero", name, r);
                continue;
            }
            const double *xr = xd + (size_t)(gathered ? row_token[r] : r) * H;
            double worst = 0;
            for (uint32_t c = 0; c < n_out; c++) {
                double g = bias[e * N + c], u = bias[e * N + n_out + c], ga = fabs(g), ua = fabs(u);
                for (int j = 0; j < H; j++) {
                    const double pg = w.deq[((size_t)e * N + c) * H + j] * xr[j];
                    const double pu = w.deq[((size_t)e * N + n_out + c) * H + j] * xr[j];
                    g += pg;
                    u += pu;
                    ga += fabs(pg);
                    ua += fabs(pu);
                }
                const double want = ref_act(FP8_MOE_ACT_SWIGLU, g) * u;
                /* Room for f32 sums: SwiGLU passes on their errors with slopes below 1.1 and |silu(g)|. */
                const double room = f32_sum_room(H, 1.1 * fabs(u) * ga + fabs(ref_act(FP8_MOE_ACT_SWIGLU, g)) * ua);
                const double err = fmax(fabs(y[(size_t)r * n_out + c] - want) - room, 0) / (fabs(want) + 1e-3);
                worst = err > worst ? err : worst;
            }
            CHECK(worst < 1e-5, "%s: row %u (expert %u) off by %.3g beyond f32 summation", name, r, e, worst);
            checked++;
        }
    CHECK(checked == M * K, "%s: %u rows checked, want %d", name, checked, M * K);
    for (uint32_t r = total; r < R; r++)
        for (uint32_t c = 0; c < n_out; c++)
            CHECK(y[(size_t)r * n_out + c] == SENTINEL, "%s: row %u past total_rows was written", name, r);
    free(pw); free(x); free(xd); free(y);
    fp8_buffer_free(ib); fp8_buffer_free(pb); fp8_buffer_free(yb); fp8_buffer_free(xb); fp8_buffer_free(xsb);
    fp8_buffer_free(bb);
    w.w.bias.buffer = NULL;
    ref_experts_free(&w);
}

/* Dense mode: a plain GEMM with the epilogue over M tokens. */
static void test_dense(void)
{
    test_rng rng = {0xde};
    enum { M = 3, H = 40, N = 16 };
    ref_experts w;
    CHECK_STATUS(ref_experts_make(dev, &rng, 1, N, H, FP8_E4M3FN, ROW_F32, 0.2f, 0, &w), FP8_OK);
    float x[M * H];
    for (int i = 0; i < M * H; i++) x[i] = test_rng_normal(&rng);
    fp8_buffer *xb = ref_upload(dev, FP8_F32, x, M * H), *yb = NULL;
    fp8_buffer_create(dev, M * N * 4, &yb);
    fp8_moe_gemm_desc d = {.plan = {.m = M, .experts = 1}, .n = N, .k = H, .weights = w.w,
                           .x = {.buffer = xb, .dtype = FP8_F32}, .activation = FP8_MOE_ACT_GELU,
                           .y = {.buffer = yb, .dtype = FP8_F32}};
    CHECK_STATUS(fp8_moe_grouped_gemm(dev, &d), FP8_OK);
    float y[M * N];
    fp8_buffer_read(yb, 0, y, sizeof y);
    for (int t = 0; t < M; t++)
        for (int c = 0; c < N; c++) {
            double acc = 0, abs_sum = 0;
            for (int j = 0; j < H; j++) {
                acc += w.deq[(size_t)c * H + j] * x[t * H + j];
                abs_sum += fabs(w.deq[(size_t)c * H + j] * x[t * H + j]);
            }
            const double want = ref_act(FP8_MOE_ACT_GELU, acc);
            CHECK(fabs(y[t * N + c] - want) <= 1e-6 * (fabs(want) + 1e-3) + f32_sum_room(H, 1.13 * abs_sum),
                  "dense: y[%d,%d] = %g, want %g", t, c, y[t * N + c], want);
        }
    fp8_buffer_free(xb); fp8_buffer_free(yb);
    ref_experts_free(&w);
}

/* Combine: y = sum_j w * rows[slot_row] (j ascending) + shared, rounded once; bit-exact. */
static void test_combine(void)
{
    test_rng rng = {0xc0};
    enum { M = 6, K = 3, E = 7, H = 20, A = 2 };
    int32_t ids[M * K];
    for (int t = 0; t < M; t++)
        for (int j = 0; j < K; j++) ids[t * K + j] = (t + 2 * j) % E;
    size_t pbytes;
    uint32_t R;
    CHECK_STATUS(fp8_moe_plan_size(M, K, E, A, &pbytes, &R), FP8_OK);
    fp8_buffer *ib = NULL, *pb = NULL, *yb = NULL;
    fp8_buffer_create(dev, sizeof ids, &ib);
    fp8_buffer_write(ib, 0, ids, sizeof ids);
    fp8_buffer_create(dev, pbytes, &pb);
    const fp8_moe_plan plan = {.buffer = pb, .m = M, .top_k = K, .experts = E, .row_align = A};
    fp8_moe_group_desc gd = {.ids = {.buffer = ib, .dtype = FP8_I32}, .plan = plan};
    CHECK_STATUS(fp8_moe_group(dev, &gd), FP8_OK);
    uint32_t *pw = malloc(pbytes);
    fp8_buffer_read(pb, 0, pw, pbytes);
    const uint32_t *slot_row = pw + 16 + E + E + 1 + E + R + R;
    float *rows = malloc((size_t)R * H * 4), wts[M * K], shared[M * H];
    for (size_t i = 0; i < (size_t)R * H; i++) rows[i] = test_rng_normal(&rng);
    for (int i = 0; i < M * K; i++) wts[i] = test_rng_uniform(&rng, 0, 1);
    for (int i = 0; i < M * H; i++) shared[i] = test_rng_normal(&rng);
    fp8_buffer *rb = ref_upload(dev, FP8_F32, rows, (size_t)R * H), *wb = ref_upload(dev, FP8_F32, wts, M * K);
    fp8_buffer *sb = ref_upload(dev, FP8_F32, shared, M * H);
    fp8_buffer_create(dev, M * H * 4, &yb);
    for (int with_shared = 0; with_shared < 2; with_shared++) {
        fp8_moe_combine_desc d = {.plan = plan, .hidden = H, .rows = {.buffer = rb, .dtype = FP8_F32},
                                  .weights = {.buffer = wb, .dtype = FP8_F32},
                                  .shared = {.buffer = with_shared ? sb : NULL, .dtype = FP8_F32},
                                  .y = {.buffer = yb, .dtype = FP8_F32}};
        CHECK_STATUS(fp8_moe_combine(dev, &d), FP8_OK);
        float y[M * H];
        fp8_buffer_read(yb, 0, y, sizeof y);
        for (int t = 0; t < M; t++)
            for (int h = 0; h < H; h++) {
                double acc = 0;
                for (int j = 0; j < K; j++) acc += (double)wts[t * K + j] * rows[(size_t)slot_row[t * K + j] * H + h];
                if (with_shared) acc += shared[t * H + h];
                CHECK(y[t * H + h] == (float)acc, "combine: y[%d,%d] = %.9g, want %.9g", t, h, y[t * H + h], (float)acc);
            }
    }
    free(pw); free(rows);
    fp8_buffer_free(ib); fp8_buffer_free(pb); fp8_buffer_free(yb); fp8_buffer_free(rb); fp8_buffer_free(wb);
    fp8_buffer_free(sb);
}

int main(void)
{
    fp8_context_options opt = {.log = test_log};
    CHECK_STATUS(fp8_context_create(&opt, &ctx), FP8_OK);
    dev = ref_open_device(ctx);
    test_grouped(0, 0, 1);
    test_grouped(0, 0, 0);
    test_grouped(1, 0, 1);
    test_grouped(1, 32, 1);
    test_grouped(1, 32, 0);
    test_dense();
    test_combine();
    ref_close_device(dev);
    fp8_context_destroy(ctx);
    return test_finish("moe_gemm");
}
