/* Block-scaled quantization and GEMM against the shared DeepSeek-V3 and MXFP4 reference vectors:
 * codes and scales bit-exact, GEMM results through the public API on the CPU device within 1e-6. */
#include "test_util.h"

#include <math.h>
#include <string.h>

/* A reference file: `# shape R C dtype`, then values (hex bits for f32/u8, decimal for f64). */
typedef struct block_file {
    uint32_t rows, cols;
    uint32_t *bits;   /* f32 / u8 */
    double *values;   /* f64 */
} block_file;

static block_file read_block(const char *name, const char *want_dtype)
{
    char rel[128];
    snprintf(rel, sizeof rel, "blocks/%s.txt", name);
    const char *path = test_data_path(rel);
    FILE *f = fopen(path, "r");
    if (!f) test_skip("reference blocks not found at %s (expected ../shared/testdata beside the checkout)", path);
    block_file b = {0};
    char dtype[16] = "";
    if (fscanf(f, " # shape %u %u %15s", &b.rows, &b.cols, dtype) != 3 || strcmp(dtype, want_dtype) != 0) {
        fprintf(stderr, "%s: bad header (dtype %s, want %s)\n", path, dtype, want_dtype);
        exit(1);
    }
    const size_t n = (size_t)b.rows * b.cols;
    const bool f64 = strcmp(dtype, "f64") == 0;
    if (f64) b.values = malloc(n * sizeof *b.values);
    else b.bits = malloc(n * sizeof *b.bits);
    for (size_t i = 0; i < n; i++) {
        int got = f64 ? fscanf(f, "%lf", &b.values[i]) : fscanf(f, "%x", &b.bits[i]);
        if (got != 1) {
            fprintf(stderr, "%s: only %zu of %zu values\n", path, i, n);
            exit(1);
        }
    }
    fclose(f);
    return b;
}

static void free_block(block_file *b) { free(b->bits); free(b->values); }

static float *as_f32(const block_file *b)
{
    size_t n = (size_t)b->rows * b->cols;
    float *out = malloc(n * sizeof *out);
    memcpy(out, b->bits, n * sizeof *out); /* uint32 bits -> float: same size, same bytes */
    return out;
}

static uint8_t *as_u8(const block_file *b)
{
    size_t n = (size_t)b->rows * b->cols;
    uint8_t *out = malloc(n);
    for (size_t i = 0; i < n; i++) out[i] = (uint8_t)b->bits[i];
    return out;
}

/* Compare byte codes; report the first few mismatches. */
static void compare_bytes(const char *what, const uint8_t *got, const uint8_t *want, size_t n, uint32_t cols)
{
    size_t bad = 0;
    for (size_t i = 0; i < n; i++)
        if (got[i] != want[i] && bad++ < 5)
            fprintf(stderr, "%s [%zu,%zu]: got %#04x want %#04x\n", what, i / cols, i % cols, got[i], want[i]);
    CHECK(bad == 0, "%s: %zu of %zu codes differ", what, bad, n);
}

static void compare_f32_bits(const char *what, const float *got, const uint32_t *want, size_t n)
{
    size_t bad = 0;
    for (size_t i = 0; i < n; i++) {
        uint32_t g;
        memcpy(&g, &got[i], 4);
        if (g != want[i] && bad++ < 5) fprintf(stderr, "%s [%zu]: got %08x want %08x\n", what, i, g, want[i]);
    }
    CHECK(bad == 0, "%s: %zu of %zu scales differ", what, bad, n);
}

static void test_deepseek_quantize(void)
{
    block_file W = read_block("ds_W", "f32"), Wq = read_block("ds_Wq", "u8"), Ws = read_block("ds_Ws", "f32");
    block_file X = read_block("ds_X", "f32"), Xq = read_block("ds_Xq", "u8"), Xs = read_block("ds_Xs", "f32");
    CHECK(W.rows == 320 && W.cols == 384 && Ws.rows == 3 && Ws.cols == 3, "ds_W shapes");
    CHECK(X.rows == 7 && X.cols == 384 && Xs.rows == 7 && Xs.cols == 3, "ds_X shapes");

    float *w = as_f32(&W);
    uint8_t *wq = malloc((size_t)W.rows * W.cols), *wq_want = as_u8(&Wq);
    float ws[9];
    fp8_quantize_desc d = {
        .rows = W.rows, .cols = W.cols, .src_dtype = FP8_F32, .src = w,
        .dst_dtype = FP8_E4M3FN, .dst = wq, .dst_bytes = (size_t)W.rows * W.cols,
        .scale_layout = {FP8_SCALE_BLOCK, FP8_F32, 128, 128}, .scale = ws, .scale_bytes = sizeof ws,
    };
    CHECK_STATUS(fp8_quantize(&d), FP8_OK);
    compare_bytes("ds_Wq", wq, wq_want, (size_t)W.rows * W.cols, W.cols);
    compare_f32_bits("ds_Ws", ws, Ws.bits, 9);

    float *x = as_f32(&X);
    uint8_t *xq = malloc((size_t)X.rows * X.cols), *xq_want = as_u8(&Xq);
    float xs[21];
    d = (fp8_quantize_desc){
        .rows = X.rows, .cols = X.cols, .src_dtype = FP8_F32, .src = x,
        .dst_dtype = FP8_E4M3FN, .dst = xq, .dst_bytes = (size_t)X.rows * X.cols,
        .scale_layout = {FP8_SCALE_BLOCK, FP8_F32, 1, 128}, .scale = xs, .scale_bytes = sizeof xs,
    };
    CHECK_STATUS(fp8_quantize(&d), FP8_OK);
    compare_bytes("ds_Xq", xq, xq_want, (size_t)X.rows * X.cols, X.cols);
    compare_f32_bits("ds_Xs", xs, Xs.bits, 21);

    free(w); free(wq); free(wq_want); free(x); free(xq); free(xq_want);
    free_block(&W); free_block(&Wq); free_block(&Ws); free_block(&X); free_block(&Xq); free_block(&Xs);
}

static void test_mxfp4_quantize(void)
{
    block_file W = read_block("ds_W", "f32"), Wq = read_block("mxfp4_Wq", "u8"), We = read_block("mxfp4_We8m0", "u8");
    CHECK(Wq.rows == 320 && Wq.cols == 384 && We.rows == 320 && We.cols == 12, "mxfp4 shapes");
    float *w = as_f32(&W);
    const size_t n = (size_t)W.rows * W.cols;
    uint8_t *packed = malloc(n / 2), *codes = malloc(n), *codes_want = as_u8(&Wq), *e8_want = as_u8(&We);
    uint8_t e8[320 * 12];
    fp8_quantize_desc d = {
        .rows = W.rows, .cols = W.cols, .src_dtype = FP8_F32, .src = w,
        .dst_dtype = FP8_E2M1, .dst = packed, .dst_bytes = n / 2,
        .scale_layout = {FP8_SCALE_BLOCK, FP8_E8M0, 1, 32}, .scale = e8, .scale_bytes = sizeof e8,
    };
    CHECK_STATUS(fp8_quantize(&d), FP8_OK);
    /* Our storage: element 2i in the low nibble of byte i. The reference: one code per byte. */
    for (size_t i = 0; i < n; i++) codes[i] = (i & 1) ? packed[i / 2] >> 4 : packed[i / 2] & 0xf;
    compare_bytes("mxfp4_Wq", codes, codes_want, n, W.cols);
    compare_bytes("mxfp4_We8m0", e8, e8_want, sizeof e8, 12);
    free(w); free(packed); free(codes); free(codes_want); free(e8_want);
    free_block(&W); free_block(&Wq); free_block(&We);
}

/* ---- GEMM through the public API on the CPU device ---- */

static fp8_buffer *upload(fp8_device *dev, const void *data, size_t bytes)
{
    fp8_buffer *b = NULL;
    CHECK_STATUS(fp8_buffer_create(dev, bytes, &b), FP8_OK);
    if (b) CHECK_STATUS(fp8_buffer_write(b, 0, data, bytes), FP8_OK);
    return b;
}

/* Every element within 1e-6 of the float64 reference, relative to max(|ref|, floor). The floor is
 * 1e-6 of the largest |ref| of the matrix: it only matters for results that cancel to almost zero,
 * where a relative error says nothing about the GEMM (the rounding of the f32 result alone is
 * 2^-24 relative, and double accumulation adds ~1e-16 of the sum of |terms|). */
static void compare_y(const char *what, const float *y, const block_file *ref)
{
    const size_t n = (size_t)ref->rows * ref->cols;
    double ymax = 0;
    for (size_t i = 0; i < n; i++) ymax = fmax(ymax, fabs(ref->values[i]));
    const double floor_abs = 1e-6 * ymax;
    double worst = 0;
    size_t bad = 0, worst_i = 0;
    for (size_t i = 0; i < n; i++) {
        double rel = fabs((double)y[i] - ref->values[i]) / fmax(fabs(ref->values[i]), floor_abs);
        if (rel > worst) worst = rel, worst_i = i;
        if (!(rel <= 1e-6) && bad++ < 5)
            fprintf(stderr, "%s [%zu]: got %.9g want %.17g (rel %.3g)\n", what, i, y[i], ref->values[i], rel);
    }
    printf("%s: worst relative error %.3g at %zu (floor %.3g)\n", what, worst, worst_i, floor_abs);
    CHECK(bad == 0, "%s: %zu of %zu elements beyond 1e-6 relative", what, bad, n);
    /* Tighter: the oracle rounds a double sum once to f32, so each element is within half an f32 ulp
     * of the reference, plus what two double summation orders may differ by (1e-12 of the largest). */
    size_t loose = 0;
    for (size_t i = 0; i < n; i++) {
        double r = ref->values[i];
        int e;
        (void)frexp(r, &e);
        double half_ulp = ldexp(1.0, e - 25); /* |r| in [2^(e-1), 2^e): f32 ulp 2^(e-24) */
        if (!(fabs((double)y[i] - r) <= half_ulp + 1e-12 * ymax) && loose++ < 5)
            fprintf(stderr, "%s [%zu]: %.9g is not the f32 rounding of %.17g\n", what, i, y[i], r);
    }
    CHECK(loose == 0, "%s: %zu elements further than half an f32 ulp from the reference", what, loose);
}

static void test_gemm(void)
{
    block_file X = read_block("ds_X", "f32"), Wq = read_block("ds_Wq", "u8"), Ws = read_block("ds_Ws", "f32");
    block_file Xq = read_block("ds_Xq", "u8"), Xs = read_block("ds_Xs", "f32");
    block_file Mq = read_block("mxfp4_Wq", "u8"), Me = read_block("mxfp4_We8m0", "u8");
    block_file Y16 = read_block("ds_Y_w8a16", "f64"), Y8 = read_block("ds_Y_w8a8", "f64");
    block_file Y4 = read_block("mxfp4_Y_w4a16", "f64");
    const uint32_t M = 7, N = 320, K = 384;

    fp8_context_options opt = {.log = test_log};
    fp8_context *ctx = NULL;
    CHECK_STATUS(fp8_context_create(&opt, &ctx), FP8_OK);
    uint32_t idx = 0;
    fp8_device_filter filter = {.backend = FP8_BACKEND_CPU};
    CHECK_STATUS(fp8_context_find_device(ctx, &filter, &idx), FP8_OK);
    fp8_device *dev = NULL;
    CHECK_STATUS(fp8_device_open(ctx, idx, &dev), FP8_OK);
    if (!dev) test_skip("no CPU device");

    float *x = as_f32(&X), *wsf = as_f32(&Ws), *xsf = as_f32(&Xs);
    uint8_t *wq = as_u8(&Wq), *xq = as_u8(&Xq), *me = as_u8(&Me);
    uint8_t *mq = malloc((size_t)N * K / 2);
    for (size_t i = 0; i < (size_t)N * K / 2; i++) mq[i] = (uint8_t)((Mq.bits[2 * i] & 0xf) | (Mq.bits[2 * i + 1] & 0xf) << 4);

    fp8_buffer *bx = upload(dev, x, (size_t)M * K * 4), *bw = upload(dev, wq, (size_t)N * K);
    fp8_buffer *bws = upload(dev, wsf, 9 * 4), *bxq = upload(dev, xq, (size_t)M * K);
    fp8_buffer *bxs = upload(dev, xsf, 21 * 4), *bmq = upload(dev, mq, (size_t)N * K / 2);
    fp8_buffer *bme = upload(dev, me, (size_t)N * 12), *by = NULL;
    CHECK_STATUS(fp8_buffer_create(dev, (size_t)M * N * 4, &by), FP8_OK);
    float *y = malloc((size_t)M * N * 4);

    /* W8A16: f32 activations, E4M3 weights with 128x128 f32 block scales. */
    fp8_gemm_desc g = {
        .m = M, .n = N, .k = K,
        .w = {bw, 0, FP8_E4M3FN, 0}, .w_scales = {{FP8_SCALE_BLOCK, FP8_F32, 128, 128}, bws, 0, 0},
        .x = {bx, 0, FP8_F32, 0}, .y = {by, 0, FP8_F32, 0},
    };
    CHECK_STATUS(fp8_gemm(dev, &g), FP8_OK);
    CHECK_STATUS(fp8_buffer_read(by, 0, y, (size_t)M * N * 4), FP8_OK);
    compare_y("ds_Y_w8a16", y, &Y16);

    /* W8A8: E4M3 activations with 1x128 f32 scales. */
    g.x = (fp8_operand){bxq, 0, FP8_E4M3FN, 0};
    g.x_scales = (fp8_scales){{FP8_SCALE_BLOCK, FP8_F32, 1, 128}, bxs, 0, 0};
    CHECK_STATUS(fp8_gemm(dev, &g), FP8_OK);
    CHECK_STATUS(fp8_buffer_read(by, 0, y, (size_t)M * N * 4), FP8_OK);
    compare_y("ds_Y_w8a8", y, &Y8);

    /* W4A16 MXFP4: packed E2M1 weights with 1x32 E8M0 scales. */
    g.x = (fp8_operand){bx, 0, FP8_F32, 0};
    g.x_scales = (fp8_scales){0};
    g.w = (fp8_operand){bmq, 0, FP8_E2M1, 0};
    g.w_scales = (fp8_scales){{FP8_SCALE_BLOCK, FP8_E8M0, 1, 32}, bme, 0, 0};
    CHECK_STATUS(fp8_gemm(dev, &g), FP8_OK);
    CHECK_STATUS(fp8_buffer_read(by, 0, y, (size_t)M * N * 4), FP8_OK);
    compare_y("mxfp4_Y_w4a16", y, &Y4);

    fp8_buffer *bufs[] = {bx, bw, bws, bxq, bxs, bmq, bme, by};
    for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++) fp8_buffer_free(bufs[i]);
    fp8_device_close(dev);
    fp8_context_destroy(ctx);
    free(x); free(wsf); free(xsf); free(wq); free(xq); free(me); free(mq); free(y);
    block_file *all[] = {&X, &Wq, &Ws, &Xq, &Xs, &Mq, &Me, &Y16, &Y8, &Y4};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) free_block(all[i]);
}

int main(void)
{
    test_deepseek_quantize();
    test_mxfp4_quantize();
    test_gemm();
    return test_finish("blocks");
}
