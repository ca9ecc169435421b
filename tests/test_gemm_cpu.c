/* The CPU GEMM through the public API (fp8_quantize + fp8_gemm) against a double-precision GEMM of the
 * dequantized operands computed here: every weight dtype and scale layout, float and FP8 activations,
 * bias and output dtypes, padded rows, nonzero offsets, operands sharing one buffer. */
#include "test_util.h"

#include <math.h>
#include <string.h>

/* Weight scale layouts. */
static const fp8_scale_layout w_layouts[] = {
    {FP8_SCALE_NONE, 0, 0, 0},
    {FP8_SCALE_TENSOR, FP8_F32, 0, 0},
    {FP8_SCALE_ROW, FP8_F32, 0, 0},
    {FP8_SCALE_COL, FP8_F32, 0, 0},
    {FP8_SCALE_BLOCK, FP8_F32, 128, 128},
    {FP8_SCALE_BLOCK, FP8_F32, 5, 7},
    {FP8_SCALE_BLOCK, FP8_E8M0, 1, 32},
    {FP8_SCALE_BLOCK, FP8_E8M0, 3, 4},
    {FP8_SCALE_ROW, FP8_E8M0, 0, 0},
    {FP8_SCALE_BLOCK, FP8_E4M3FN, 1, 16},
    {FP8_SCALE_TENSOR, FP8_E4M3FN, 0, 0},
};

/* Activation configurations: a float dtype without scales, or a quantized one with a layout. */
typedef struct x_cfg {
    fp8_dtype dtype;
    fp8_scale_layout layout;
} x_cfg;

static const x_cfg x_cfgs[] = {
    {FP8_F32, {FP8_SCALE_NONE, 0, 0, 0}},
    {FP8_F16, {FP8_SCALE_NONE, 0, 0, 0}},
    {FP8_BF16, {FP8_SCALE_NONE, 0, 0, 0}},
    {FP8_E4M3FN, {FP8_SCALE_ROW, FP8_F32, 0, 0}},
    {FP8_E4M3FN, {FP8_SCALE_BLOCK, FP8_F32, 1, 128}},
    {FP8_E5M2, {FP8_SCALE_TENSOR, FP8_F32, 0, 0}},
    {FP8_E4M3FN, {FP8_SCALE_NONE, 0, 0, 0}},
    {FP8_E2M1, {FP8_SCALE_BLOCK, FP8_E8M0, 1, 32}},
    {FP8_E4M3FNUZ, {FP8_SCALE_BLOCK, FP8_E4M3FN, 1, 16}},
    {FP8_E5M2FNUZ, {FP8_SCALE_BLOCK, FP8_F32, 2, 5}},
};

static const fp8_dtype w_dtypes[] = {FP8_E4M3FN, FP8_E5M2, FP8_E4M3FNUZ, FP8_E5M2FNUZ, FP8_E2M1};
static const fp8_dtype y_dtypes[] = {FP8_F32, FP8_F16, FP8_BF16};
static const fp8_dtype bias_dtypes[] = {FP8_DTYPE_INVALID, FP8_F32, FP8_F16, FP8_BF16};

typedef struct shape { uint32_t m, n, k; } shape;
static const shape shapes[] = {{1, 1, 1}, {1, 5, 7}, {3, 33, 130}, {17, 9, 64}, {4, 40, 200}, {2, 3, 256}};

static unsigned elem_bytes(fp8_dtype d) { return fp8_dtype_bits(d) >= 8 ? fp8_dtype_bits(d) / 8 : 1; }

/* A matrix in caller layout: rows x cols with a row stride, in host memory; padding is garbage. */
typedef struct hmat {
    uint32_t rows, cols;
    fp8_dtype dtype;
    size_t stride;          /* elements */
    uint8_t *data;
    size_t bytes;
    fp8_scale_layout layout;
    uint8_t *scale;
    size_t scale_bytes;
    float tensor_scale;     /* as passed to fp8_gemm (0 = 1) */
} hmat;

static size_t mat_bytes(fp8_dtype d, uint32_t rows, uint32_t cols, size_t stride)
{
    size_t b = 0;
    fp8_dtype_storage_size(d, (size_t)(rows - 1) * stride + cols, &b);
    return b;
}

static void fill_garbage(test_rng *rng, uint8_t *p, size_t n)
{
    for (size_t i = 0; i < n; i++) p[i] = (uint8_t)test_rng_next(rng);
}

/* Random values with a magnitude per row, quantized (or stored) into a strided host matrix. */
static hmat make_matrix(test_rng *rng, uint32_t rows, uint32_t cols, fp8_dtype dtype, fp8_scale_layout layout,
                        size_t pad)
{
    hmat m = {rows, cols, dtype, cols + pad, NULL, 0, layout, NULL, 0, 0};
    if (dtype == FP8_E2M1 && (m.stride & 1)) m.stride++;
    m.bytes = mat_bytes(dtype, rows, cols, m.stride);
    m.data = malloc(m.bytes);
    fill_garbage(rng, m.data, m.bytes);
    float *src = malloc((size_t)rows * cols * sizeof *src);
    for (uint32_t r = 0; r < rows; r++) {
        const float mag = ldexpf(1.0f, (int)test_rng_uniform(rng, -2, 3));
        for (uint32_t c = 0; c < cols; c++) src[(size_t)r * cols + c] = test_rng_normal(rng) * mag;
    }
    if (dtype == FP8_F32 || dtype == FP8_F16 || dtype == FP8_BF16) {
        for (uint32_t r = 0; r < rows; r++)
            CHECK_STATUS(fp8_encode_array(dtype, src + (size_t)r * cols, cols, m.data + (size_t)r * m.stride * elem_bytes(dtype),
                                          m.bytes - (size_t)r * m.stride * elem_bytes(dtype), FP8_OVERFLOW_SATURATE),
                         FP8_OK);
    } else {
        size_t count = 0;
        CHECK_STATUS(fp8_scale_count(&layout, rows, cols, &count), FP8_OK);
        const fp8_dtype sd = layout.dtype ? layout.dtype : FP8_F32;
        m.scale_bytes = count * elem_bytes(sd);
        m.scale = malloc(m.scale_bytes ? m.scale_bytes : 1);
        float t = 0;
        fp8_quantize_desc d = {
            .rows = rows, .cols = cols, .src_dtype = FP8_F32, .src = src, .dst_dtype = dtype, .dst = m.data,
            .dst_bytes = m.bytes, .dst_row_stride = m.stride, .scale_layout = layout,
            .scale = m.scale_bytes ? m.scale : NULL, .scale_bytes = m.scale_bytes, .tensor_scale = &t,
        };
        CHECK_STATUS(fp8_quantize(&d), FP8_OK);
        m.tensor_scale = layout.kind != FP8_SCALE_NONE && sd == FP8_E4M3FN ? t : 0;
    }
    free(src);
    return m;
}

/* Dequantized element (r, c) in double, computed here from the documented layout. */
static double deq(const hmat *m, uint32_t r, uint32_t c)
{
    const size_t i = (size_t)r * m->stride + c;
    uint32_t code;
    switch (fp8_dtype_bits(m->dtype)) {
    case 4: code = (i & 1) ? m->data[i / 2] >> 4 : m->data[i / 2] & 0xfu; break;
    case 8: code = m->data[i]; break;
    case 16: { uint16_t h; memcpy(&h, m->data + 2 * i, 2); code = h; break; }
    default: memcpy(&code, m->data + 4 * i, 4); break;
    }
    double v = fp8_decode_value(m->dtype, code);
    double s = 1.0;
    if (m->layout.kind != FP8_SCALE_NONE) {
        uint32_t bh = m->rows, bw = m->cols;
        if (m->layout.kind == FP8_SCALE_ROW) bh = 1;
        if (m->layout.kind == FP8_SCALE_COL) bw = 1;
        if (m->layout.kind == FP8_SCALE_BLOCK) bh = m->layout.block_rows, bw = m->layout.block_cols;
        const uint32_t per_row = (m->cols + bw - 1) / bw;
        const size_t si = (size_t)(r / bh) * per_row + c / bw;
        const fp8_dtype sd = m->layout.dtype ? m->layout.dtype : FP8_F32;
        uint32_t sc = 0;
        if (sd == FP8_F32) memcpy(&sc, m->scale + 4 * si, 4);
        else sc = m->scale[si];
        s = fp8_decode_value(sd, sc);
    }
    return v * s * (m->tensor_scale != 0 ? (double)m->tensor_scale : 1.0);
}

/* Half an ulp of the output dtype at |v| (subnormals included). */
static double half_ulp(fp8_dtype d, double v)
{
    const int mbits = d == FP8_F32 ? 23 : d == FP8_F16 ? 10 : 7, emin = d == FP8_F16 ? -14 : -126;
    int e = v == 0 ? emin : ilogb(v);
    if (e < emin) e = emin;
    return ldexp(1.0, e - mbits - 1);
}

static double load_out(fp8_dtype d, const uint8_t *p, size_t i)
{
    if (d == FP8_F32) { float f; memcpy(&f, p + 4 * i, 4); return f; }
    uint16_t h;
    memcpy(&h, p + 2 * i, 2);
    return fp8_decode_value(d, h);
}

typedef struct stats {
    unsigned gemms, elements, bad_elem, bad_fro, bad_bytes;
    double worst_fro[3];   /* per y dtype */
    double worst_ulp[3];   /* worst |err| / half ulp per y dtype */
} stats;

enum { OP_W, OP_WS, OP_X, OP_XS, OP_BIAS, OP_Y, OP_COUNT };

static void run_case(fp8_device *dev, test_rng *rng, const shape *sh, fp8_dtype wdt, const fp8_scale_layout *wl,
                     const x_cfg *xc, fp8_dtype bdt, int yi, unsigned variant, stats *st)
{
    const fp8_dtype ydt = y_dtypes[yi];
    const uint32_t M = sh->m, N = sh->n, K = sh->k;
    const size_t pad = variant % 3 == 0 ? 0 : variant % 3 + 2;
    const bool shared = variant % 4 == 1;
    hmat w = make_matrix(rng, N, K, wdt, *wl, pad);
    /* A tensor_scale on scale layouts that have no E4M3 level still multiplies every element. */
    if (w.tensor_scale == 0 && variant % 5 == 2) w.tensor_scale = 0.75f;
    hmat x = make_matrix(rng, M, K, xc->dtype, xc->layout, pad + 1);
    hmat b = {0};
    if (bdt) b = make_matrix(rng, 1, N, bdt, (fp8_scale_layout){0}, 0);
    const size_t ystride = N + pad;
    const size_t ybytes = mat_bytes(ydt, M, N, ystride);

    /* Place the operands: each in its own buffer at an offset (aligned to its element), or all in one. */
    const void *src[OP_COUNT] = {w.data, w.scale, x.data, x.scale, b.data, NULL};
    const size_t bytes[OP_COUNT] = {w.bytes, w.scale_bytes, x.bytes, x.scale_bytes, bdt ? b.bytes : 0, ybytes};
    const unsigned align[OP_COUNT] = {1, wl->dtype == FP8_F32 || !wl->dtype ? 4 : 1, elem_bytes(xc->dtype),
                                      xc->layout.dtype == FP8_F32 || !xc->layout.dtype ? 4 : 1,
                                      bdt ? elem_bytes(bdt) : 1, elem_bytes(ydt)};
    size_t off[OP_COUNT], bufsize[OP_COUNT];
    int bufof[OP_COUNT];
    size_t cursor = 0;
    for (int o = 0; o < OP_COUNT; o++) {
        size_t lead = (size_t)align[o] * (1 + (variant + o) % 5);
        if (shared) {
            off[o] = (cursor + align[o] - 1) / align[o] * align[o] + lead;
            cursor = off[o] + bytes[o];
            bufof[o] = 0;
        } else {
            off[o] = lead;
            bufsize[o] = lead + bytes[o] + (variant % 2 ? 0 : 9); /* exact fit, or a tail to watch */
            bufof[o] = o;
        }
    }
    if (shared) bufsize[0] = cursor + 5;

    fp8_buffer *buf[OP_COUNT] = {0};
    uint8_t *image[OP_COUNT] = {0};
    for (int o = 0; o < OP_COUNT; o++) {
        if (bufof[o] != o) continue;
        image[o] = malloc(bufsize[o]);
        fill_garbage(rng, image[o], bufsize[o]);
        CHECK_STATUS(fp8_buffer_create(dev, bufsize[o], &buf[o]), FP8_OK);
    }
    for (int o = 0; o < OP_COUNT; o++)
        if (src[o] && bytes[o]) memcpy(image[bufof[o]] + off[o], src[o], bytes[o]);
    for (int o = 0; o < OP_COUNT; o++)
        if (buf[o]) CHECK_STATUS(fp8_buffer_write(buf[o], 0, image[o], bufsize[o]), FP8_OK);

    fp8_gemm_desc g = {
        .m = M, .n = N, .k = K,
        .w = {buf[bufof[OP_W]], off[OP_W], wdt, w.stride},
        .w_scales = {*wl, wl->kind ? buf[bufof[OP_WS]] : NULL, off[OP_WS], w.tensor_scale},
        .x = {buf[bufof[OP_X]], off[OP_X], xc->dtype, x.stride},
        .x_scales = {xc->layout, xc->layout.kind ? buf[bufof[OP_XS]] : NULL, off[OP_XS], x.tensor_scale},
        .bias = {bdt ? buf[bufof[OP_BIAS]] : NULL, off[OP_BIAS], bdt, 0},
        .y = {buf[bufof[OP_Y]], off[OP_Y], ydt, ystride == N && variant % 2 ? 0 : ystride},
    };
    fp8_status gst = fp8_gemm(dev, &g);
    CHECK(gst == FP8_OK, "gemm M=%u N=%u K=%u W=%s (scale kind %d %s) X=%s Y=%s: %s", M, N, K, fp8_dtype_name(wdt),
          wl->kind, fp8_dtype_name(wl->dtype), fp8_dtype_name(xc->dtype), fp8_dtype_name(ydt), fp8_status_name(gst));
    st->gemms++;

    /* Read every buffer back: only Y's elements may have changed. */
    uint8_t *back[OP_COUNT] = {0};
    for (int o = 0; o < OP_COUNT; o++) {
        if (!buf[o]) continue;
        back[o] = malloc(bufsize[o]);
        CHECK_STATUS(fp8_buffer_read(buf[o], 0, back[o], bufsize[o]), FP8_OK);
    }
    const uint8_t *y = back[bufof[OP_Y]] + off[OP_Y];
    const unsigned yb = elem_bytes(ydt);
    for (uint32_t r = 0; r < M; r++)
        for (uint32_t c = 0; c < N; c++) memset(image[bufof[OP_Y]] + off[OP_Y] + ((size_t)r * ystride + c) * yb, 0, yb);
    unsigned changed = 0;
    double *ref = malloc((size_t)M * N * sizeof *ref), *got = malloc((size_t)M * N * sizeof *got);
    double *xd = malloc((size_t)M * K * sizeof *xd), *wd = malloc((size_t)N * K * sizeof *wd);
    for (uint32_t r = 0; r < M; r++)
        for (uint32_t k = 0; k < K; k++) xd[(size_t)r * K + k] = deq(&x, r, k);
    for (uint32_t c = 0; c < N; c++)
        for (uint32_t k = 0; k < K; k++) wd[(size_t)c * K + k] = deq(&w, c, k);
    double num = 0, den = 0;
    unsigned bad = 0;
    for (uint32_t r = 0; r < M; r++)
        for (uint32_t c = 0; c < N; c++) {
            double acc = 0, mag = 0;
            for (uint32_t k = 0; k < K; k++) {
                double p = xd[(size_t)r * K + k] * wd[(size_t)c * K + k];
                acc += p;
                mag += fabs(p);
            }
            if (bdt) {
                double bv = deq(&b, 0, c);
                acc += bv;
                mag += fabs(bv);
            }
            const size_t i = (size_t)r * N + c;
            ref[i] = acc;
            got[i] = load_out(ydt, y, (size_t)r * ystride + c);
            /* The oracle accumulates in double and rounds once: within half an output ulp of the exact
             * result, plus what two double summations may differ by (K * 2^-52 of the sum of |terms|). */
            const double err = fabs(got[i] - acc), hu = half_ulp(ydt, acc);
            const double tol = hu + ldexp(mag * (K + 2), -51);
            st->worst_ulp[yi] = fmax(st->worst_ulp[yi], err / hu);
            if (!(err <= tol) && bad++ < 3)
                fprintf(stderr, "M=%u N=%u K=%u W=%s X=%s Y=%s bias=%s: y[%u,%u]=%.9g want %.17g (%.3g half-ulps)\n", M, N,
                        K, fp8_dtype_name(wdt), fp8_dtype_name(xc->dtype), fp8_dtype_name(ydt), fp8_dtype_name(bdt), r,
                        c, got[i], acc, err / hu);
            num += (got[i] - acc) * (got[i] - acc);
            den += acc * acc;
            st->elements++;
        }
    st->bad_elem += bad;
    const double fro = den > 0 ? sqrt(num / den) : sqrt(num);
    /* f32: single rounding is 2^-24 relative per element, so 1e-7 holds with room; f16 2^-11; bf16 2^-8. */
    const double fro_max = ydt == FP8_F32 ? 1e-7 : ydt == FP8_F16 ? 0x1p-11 : 0x1p-8;
    st->worst_fro[yi] = fmax(st->worst_fro[yi], fro);
    if (!(fro <= fro_max) && st->bad_fro++ < 5)
        fprintf(stderr, "M=%u N=%u K=%u W=%s X=%s Y=%s: relative Frobenius error %.3g > %.3g\n", M, N, K,
                fp8_dtype_name(wdt), fp8_dtype_name(xc->dtype), fp8_dtype_name(ydt), fro, fro_max);

    /* Now every byte other than Y's elements must be what was written. */
    for (int o = 0; o < OP_COUNT; o++) {
        if (!buf[o]) continue;
        if (o == bufof[OP_Y])
            for (uint32_t r = 0; r < M; r++)
                for (uint32_t c = 0; c < N; c++) memset(back[o] + off[OP_Y] + ((size_t)r * ystride + c) * yb, 0, yb);
        if (memcmp(back[o], image[o], bufsize[o]) != 0) changed++;
    }
    if (changed && st->bad_bytes++ < 5)
        fprintf(stderr, "M=%u N=%u K=%u W=%s X=%s Y=%s: bytes outside Y's elements changed (%s buffers)\n", M, N, K,
                fp8_dtype_name(wdt), fp8_dtype_name(xc->dtype), fp8_dtype_name(ydt), shared ? "shared" : "separate");

    for (int o = 0; o < OP_COUNT; o++) {
        fp8_buffer_free(buf[o]);
        free(image[o]);
        free(back[o]);
    }
    free(ref); free(got); free(xd); free(wd);
    free(w.data); free(w.scale); free(x.data); free(x.scale); free(b.data); free(b.scale);
}

/* Results beyond the output's range: the oracle converts without saturation (f16 gives Inf). */
static void test_overflow(fp8_device *dev)
{
    uint8_t wq = (uint8_t)fp8_encode_value(FP8_E5M2, 57344.0f, FP8_OVERFLOW_SATURATE);
    float x = 2.0f;
    fp8_buffer *bw = NULL, *bx = NULL, *by = NULL;
    CHECK_STATUS(fp8_buffer_create(dev, 1, &bw), FP8_OK);
    CHECK_STATUS(fp8_buffer_create(dev, 4, &bx), FP8_OK);
    CHECK_STATUS(fp8_buffer_create(dev, 4, &by), FP8_OK);
    fp8_buffer_write(bw, 0, &wq, 1);
    fp8_buffer_write(bx, 0, &x, 4);
    for (int yi = 0; yi < 3; yi++) {
        fp8_gemm_desc g = {.m = 1, .n = 1, .k = 1, .w = {bw, 0, FP8_E5M2, 0}, .x = {bx, 0, FP8_F32, 0},
                           .y = {by, 0, y_dtypes[yi], 0}};
        CHECK_STATUS(fp8_gemm(dev, &g), FP8_OK);
        uint8_t out[4];
        fp8_buffer_read(by, 0, out, 4);
        double v = load_out(y_dtypes[yi], out, 0);
        if (y_dtypes[yi] == FP8_F16) CHECK(isinf(v) && v > 0, "114688 in f16 should be +Inf, got %g", v);
        else CHECK(v == 114688.0, "114688 in %s gave %g", fp8_dtype_name(y_dtypes[yi]), v);
    }
    fp8_buffer_free(bw); fp8_buffer_free(bx); fp8_buffer_free(by);
}

int main(void)
{
    fp8_context_options opt = {.log = test_log};
    fp8_context *ctx = NULL;
    CHECK_STATUS(fp8_context_create(&opt, &ctx), FP8_OK);
    uint32_t idx = 0;
    fp8_device_filter filter = {.backend = FP8_BACKEND_CPU};
    CHECK_STATUS(fp8_context_find_device(ctx, &filter, &idx), FP8_OK);
    fp8_device *dev = NULL;
    CHECK_STATUS(fp8_device_open(ctx, idx, &dev), FP8_OK);
    if (!dev) test_skip("the CPU device did not open");

    test_rng rng = {0xC0FFEE};
    stats st = {0};
    unsigned variant = 0;
    const size_t nx = sizeof x_cfgs / sizeof x_cfgs[0], nb = sizeof bias_dtypes / sizeof bias_dtypes[0];
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++)
        for (size_t wi = 0; wi < sizeof w_dtypes / sizeof w_dtypes[0]; wi++)
            for (size_t li = 0; li < sizeof w_layouts / sizeof w_layouts[0]; li++)
                for (int yi = 0; yi < 3; yi++, variant++)
                    run_case(dev, &rng, &shapes[s], w_dtypes[wi], &w_layouts[li], &x_cfgs[variant % nx],
                             bias_dtypes[(variant / nx) % nb], yi, variant, &st);
    /* Large enough (M*N*K >= 2^20) for the oracle to split the work over threads. */
    const shape big = {64, 130, 128};
    for (size_t wi = 0; wi < sizeof w_dtypes / sizeof w_dtypes[0]; wi++, variant++)
        run_case(dev, &rng, &big, w_dtypes[wi], &w_layouts[(wi * 2 + 4) % (sizeof w_layouts / sizeof w_layouts[0])],
                 &x_cfgs[variant % nx], bias_dtypes[wi % nb], (int)(wi % 3), variant, &st);
    test_overflow(dev);

    printf("gemm_cpu: %u GEMMs, %u elements\n", st.gemms, st.elements);
    for (int yi = 0; yi < 3; yi++)
        printf("  y %-4s: worst relative Frobenius error %.3g, worst element %.3f half-ulps\n", fp8_dtype_name(y_dtypes[yi]),
               st.worst_fro[yi], st.worst_ulp[yi]);
    CHECK(st.bad_elem == 0, "%u elements beyond half an output ulp", st.bad_elem);
    CHECK(st.bad_fro == 0, "%u GEMMs beyond the Frobenius bound", st.bad_fro);
    CHECK(st.bad_bytes == 0, "%u GEMMs changed bytes outside Y's elements", st.bad_bytes);
    fp8_device_close(dev);
    fp8_context_destroy(ctx);
    return test_finish("gemm_cpu");
}
