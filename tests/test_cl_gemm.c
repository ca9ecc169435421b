/* OpenCL GEMM paths against the CPU oracle: every weight dtype and scale layout, float and FP8 activations,
 * every output dtype, bias, strides and offsets, on each OpenCL path. Then the runtime's error paths: a
 * failing kernel build, the program binary cache, an allocation over the device limit, the timer, copies.
 *
 * Environment: FP8_TEST_CL_DEVICE=<name part> picks the OpenCL device (default: the first one);
 * FP8_TEST_CL_LARGE=1 runs large shapes instead of the small cases (M in {1, 3, 16, 512}, N and K near 4096,
 * M = 512 compared on sampled rows): the GPU check, where every small variant would cost a cold compile;
 * FP8_TEST_CL_GEMV_ONLY=1 runs the cases on the GEMV path only. */
#include "test_util.h"

#include "opencl/cl_internal.h"

#include <dirent.h>
#include <time.h>
#include <math.h>
#include <string.h>
#include <unistd.h>

typedef struct gcase {
    const char *name;
    uint32_t m, n, k;
    fp8_dtype w;
    fp8_scale_layout wl;
    fp8_dtype x;
    fp8_scale_layout xl;     /* FP8 activations only */
    fp8_dtype y, bias;       /* bias 0: none */
    uint32_t w_pad, x_pad, y_pad; /* extra elements per row */
    size_t w_off, x_off, y_off;   /* bytes */
} gcase;

#define L_NONE {FP8_SCALE_NONE, 0, 0, 0}
#define L_TENSOR {FP8_SCALE_TENSOR, FP8_F32, 0, 0}
#define L_ROW {FP8_SCALE_ROW, FP8_F32, 0, 0}
#define L_COL {FP8_SCALE_COL, FP8_F32, 0, 0}
#define L_BLOCK(dt, r, c) {FP8_SCALE_BLOCK, dt, r, c}

static const gcase cases[] = {
    /* name                 m   n    k    w             w scales                    x          x scales  y  bias  pads  offsets */
    {"ds-v3 128x128",       3,  130, 200, FP8_E4M3FN,   L_BLOCK(FP8_F32, 128, 128), FP8_F32,   L_NONE, FP8_F32,  0,        0, 0, 0, 0, 0, 0},
    {"ds-v3 gemv m1",       1,  257, 384, FP8_E4M3FN,   L_BLOCK(FP8_F32, 128, 128), FP8_F16,   L_NONE, FP8_F32,  FP8_F32,  0, 0, 0, 0, 0, 0},
    {"per-channel e5m2",    16, 45,  67,  FP8_E5M2,     L_ROW,                      FP8_F32,   L_NONE, FP8_F16,  FP8_F16,  3, 1, 2, 5, 12, 6},
    {"e4m3fnuz tensor",     67, 70,  100, FP8_E4M3FNUZ, L_TENSOR,                   FP8_BF16,  L_NONE, FP8_BF16, FP8_BF16, 0, 4, 1, 16, 32, 2},
    {"e5m2fnuz col",        3,  33,  50,  FP8_E5M2FNUZ, L_COL,                      FP8_F32,   L_NONE, FP8_F32,  0,        1, 0, 0, 1, 0, 0},
    {"none e4m3fn",         16, 64,  48,  FP8_E4M3FN,   L_NONE,                     FP8_F32,   L_NONE, FP8_F32,  FP8_F32,  0, 0, 0, 0, 0, 0},
    {"mxfp4 1x32",          1,  96,  130, FP8_E2M1,     L_BLOCK(FP8_E8M0, 1, 32),   FP8_F32,   L_NONE, FP8_F32,  0,        0, 0, 0, 0, 0, 0},
    {"mxfp4 1x32 m67",      67, 100, 160, FP8_E2M1,     L_BLOCK(FP8_E8M0, 1, 32),   FP8_F16,   L_NONE, FP8_F32,  FP8_F32,  2, 0, 3, 16, 0, 0},
    {"nvfp4 1x16",          3,  50,  96,  FP8_E2M1,     L_BLOCK(FP8_E4M3FN, 1, 16), FP8_F32,   L_NONE, FP8_F16,  0,        4, 2, 0, 8, 16, 0},
    {"nvfp4 1x16 m16",      16, 40,  64,  FP8_E2M1,     L_BLOCK(FP8_E4M3FN, 1, 16), FP8_BF16,  L_NONE, FP8_F32,  0,        0, 0, 0, 0, 0, 0},
    {"generic 3x5 e8m0",    3,  29,  41,  FP8_E4M3FN,   L_BLOCK(FP8_E8M0, 3, 5),    FP8_F32,   L_NONE, FP8_F32,  0,        0, 0, 0, 0, 0, 0},
    {"k16 2x48",            16, 37,  150, FP8_E5M2,     L_BLOCK(FP8_F32, 2, 48),    FP8_F32,   L_NONE, FP8_F32,  0,        0, 0, 0, 0, 0, 0},
    {"w8a8 per-token",      3,  64,  256, FP8_E4M3FN,   L_BLOCK(FP8_F32, 128, 128), FP8_E4M3FN, L_ROW, FP8_F32,  FP8_F32,  0, 0, 0, 0, 0, 0},
    {"w8a8 1x128 blocks",   67, 90,  200, FP8_E4M3FN,   L_BLOCK(FP8_F32, 128, 128), FP8_E4M3FN, L_BLOCK(FP8_F32, 1, 128), FP8_F32, 0, 0, 0, 0, 0, 0, 0},
    {"w8a8 e5m2 x",         1,  31,  70,  FP8_E4M3FN,   L_ROW,                      FP8_E5M2,  L_TENSOR, FP8_F32, 0,       0, 0, 0, 0, 0, 0},
    /* Within what the tensor-core GEMV takes (gemv_mma.cl; NVIDIA sm_89+, elsewhere gemv.cl): f16 activations,
     * rows on 16 bytes, K a multiple of 64 (FP8) or 128 (E2M1); ragged N, more than 8 tokens (two passes). */
    {"mma e4m3 128x128 m5", 5,  40,  256, FP8_E4M3FN,   L_BLOCK(FP8_F32, 128, 128), FP8_F16,   L_NONE, FP8_F16,  FP8_F32,  0, 0, 0, 0, 0, 0},
    {"mma mxfp4 m9",        9,  33,  256, FP8_E2M1,     L_BLOCK(FP8_E8M0, 1, 32),   FP8_F16,   L_NONE, FP8_F32,  0,        0, 0, 0, 0, 0, 0},
    {"mma e5m2 channel",    3,  70,  192, FP8_E5M2,     L_ROW,                      FP8_F16,   L_NONE, FP8_BF16, FP8_F16,  32, 16, 5, 0, 0, 0},
    {"mma e4m3 tensor m8",  8,  64,  128, FP8_E4M3FN,   L_TENSOR,                   FP8_F16,   L_NONE, FP8_F32,  0,        0, 0, 0, 32, 64, 0},
    {"mma e2m1 2x64 blocks", 1, 48,  384, FP8_E2M1,     L_BLOCK(FP8_F32, 2, 64),    FP8_F16,   L_NONE, FP8_F32,  0,        0, 0, 0, 0, 0, 0},
    {"mma e4m3 blocks m1",  1,  50,  1024, FP8_E4M3FN,  L_BLOCK(FP8_F32, 128, 128), FP8_F16,   L_NONE, FP8_F16,  FP8_F32,  0, 0, 0, 0, 0, 0},
    {"mma e5m2 channel m1", 1,  33,  512, FP8_E5M2,     L_ROW,                      FP8_F16,   L_NONE, FP8_F32,  0,        0, 0, 0, 0, 0, 0},
};

static const gcase large_cases[] = {
    {"large gemv ds-v3",    1,   4096, 4096, FP8_E4M3FN, L_BLOCK(FP8_F32, 128, 128), FP8_F32, L_NONE, FP8_F32, FP8_F32, 0, 0, 0, 0, 0, 0},
    {"large m16 mxfp4",     16,  4096, 4096, FP8_E2M1,   L_BLOCK(FP8_E8M0, 1, 32),   FP8_F16, L_NONE, FP8_F32, 0,       0, 0, 0, 0, 0, 0},
    {"large m512 ds-v3",    512, 4096, 4096, FP8_E4M3FN, L_BLOCK(FP8_F32, 128, 128), FP8_F32, L_NONE, FP8_F32, 0,       0, 0, 0, 0, 0, 0},
    {"large m512 w8a8",     512, 4096, 4096, FP8_E4M3FN, L_BLOCK(FP8_F32, 128, 128), FP8_E4M3FN, L_BLOCK(FP8_F32, 1, 128), FP8_F32, 0, 0, 0, 0, 0, 0, 0},
    {"large m512 nvfp4",    512, 4096, 4096, FP8_E2M1,   L_BLOCK(FP8_E4M3FN, 1, 16), FP8_F16, L_NONE, FP8_F16, FP8_F32, 0, 0, 0, 0, 0, 0},
    {"large m16 strided",   16,  4000, 4001, FP8_E5M2,   L_ROW,                      FP8_BF16, L_NONE, FP8_BF16, FP8_BF16, 7, 3, 5, 9, 6, 2},
    {"large mma m1 mxfp4",  1,   4096, 4096, FP8_E2M1,   L_BLOCK(FP8_E8M0, 1, 32),   FP8_F16, L_NONE, FP8_F32, 0,       0, 0, 0, 0, 0, 0},
    {"large mma m8 ds-v3",  8,   4096, 4096, FP8_E4M3FN, L_BLOCK(FP8_F32, 128, 128), FP8_F16, L_NONE, FP8_F16, FP8_F32, 0, 0, 0, 0, 0, 0},
    {"large mma m4 channel", 4,  4096, 14336, FP8_E4M3FN, L_ROW,                     FP8_F16, L_NONE, FP8_F32, 0,       0, 0, 0, 0, 0, 0},
    {"large m3 generic",    3,   4096, 4096, FP8_E4M3FNUZ, L_BLOCK(FP8_E8M0, 3, 5),  FP8_F32, L_NONE, FP8_F32, 0,       0, 0, 0, 0, 0, 0},
};

static double test_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* ---- host data ---------------------------------------------------------------------------------- */

static size_t storage(fp8_dtype dt, size_t elems)
{
    size_t b = 0;
    fp8_dtype_storage_size(dt, elems, &b);
    return b;
}

/* A matrix laid out in a buffer image: `off` bytes, then rows `stride` elements apart. Padding bytes are
 * 0xff, a NaN in most formats, so a kernel reading padding shows up as NaN in the result. */
typedef struct image {
    uint8_t *data;
    size_t bytes;
} image;

static image make_image(const void *packed, fp8_dtype dt, uint32_t rows, uint32_t cols, size_t stride, size_t off)
{
    const size_t rb = storage(dt, cols), sb = storage(dt, stride);
    image im;
    im.bytes = off + (size_t)(rows - 1) * sb + rb + 16;
    im.data = malloc(im.bytes);
    memset(im.data, 0xff, im.bytes);
    for (uint32_t r = 0; r < rows; r++) memcpy(im.data + off + (size_t)r * sb, (const uint8_t *)packed + (size_t)r * rb, rb);
    return im;
}

/* Values with a spread of magnitudes along both dimensions, so that block scales matter. */
static void fill_values(test_rng *rng, float *v, uint32_t rows, uint32_t cols)
{
    for (uint32_t r = 0; r < rows; r++) {
        const float rs = ldexpf(1.0f, (int)(test_rng_next(rng) % 7) - 3);
        for (uint32_t c = 0; c < cols; c++) {
            const float cs = (c / 8) % 3 == 0 ? 4.0f : 1.0f;
            v[(size_t)r * cols + c] = test_rng_normal(rng) * rs * cs;
        }
    }
}

/* A quantized operand on the host: packed codes, scales, tensor scale. */
typedef struct qmat {
    void *codes;
    void *scales;
    size_t scale_bytes;
    float tensor_scale;
} qmat;

static void quantize(const float *v, uint32_t rows, uint32_t cols, fp8_dtype dt, fp8_scale_layout layout, qmat *q)
{
    size_t count = 0;
    CHECK_STATUS(fp8_scale_count(&layout, rows, cols, &count), FP8_OK);
    fp8_dtype sdt = layout.dtype ? layout.dtype : FP8_F32;
    q->scale_bytes = count * (fp8_dtype_bits(sdt) / 8);
    q->scales = count ? malloc(q->scale_bytes) : NULL;
    const size_t cb = storage(dt, (size_t)rows * cols);
    q->codes = malloc(cb);
    q->tensor_scale = 0.0f;
    fp8_quantize_desc d = {.rows = rows, .cols = cols, .src_dtype = FP8_F32, .src = v, .dst_dtype = dt,
                           .dst = q->codes, .dst_bytes = cb, .scale_layout = layout, .scale = q->scales,
                           .scale_bytes = q->scale_bytes, .tensor_scale = &q->tensor_scale};
    CHECK_STATUS(fp8_quantize(&d), FP8_OK);
    if (sdt != FP8_E4M3FN || !count) q->tensor_scale = 0.0f; /* only NVFP4 carries one */
}

/* Float values to packed f32/f16/bf16 storage. */
static void *encode_float(const float *v, size_t count, fp8_dtype dt)
{
    const size_t bytes = storage(dt, count);
    void *out = malloc(bytes);
    if (dt == FP8_F32) memcpy(out, v, bytes);
    else CHECK_STATUS(fp8_encode_array(dt, v, count, out, bytes, FP8_OVERFLOW_CAST), FP8_OK);
    return out;
}

/* ---- one device's copy of the operands ------------------------------------------------------------ */

typedef struct dev_ops {
    fp8_buffer *w, *ws, *x, *xs, *b, *y;
} dev_ops;

static fp8_buffer *upload(fp8_device *dev, const void *data, size_t bytes)
{
    fp8_buffer *buf = NULL;
    CHECK_STATUS(fp8_buffer_create(dev, bytes, &buf), FP8_OK);
    if (buf) CHECK_STATUS(fp8_buffer_write(buf, 0, data, bytes), FP8_OK);
    return buf;
}

static void free_ops(dev_ops *o)
{
    fp8_buffer_free(o->w); fp8_buffer_free(o->ws); fp8_buffer_free(o->x);
    fp8_buffer_free(o->xs); fp8_buffer_free(o->b); fp8_buffer_free(o->y);
    memset(o, 0, sizeof *o);
}

/* Host-side inputs of a case, shared by both devices. */
typedef struct inputs {
    image w, x, y0;
    qmat wq, xq;
    void *bias;
    size_t bias_bytes;
    uint32_t m;              /* rows of X actually used (sampled rows for large cases) */
    size_t w_stride, x_stride, y_stride;
} inputs;

static const size_t SCALE_OFF = 8; /* scale tensors start 8 bytes into their buffers */

static void make_inputs(const gcase *c, uint32_t m, test_rng *rng, inputs *in)
{
    memset(in, 0, sizeof *in);
    in->m = m;
    in->w_stride = c->k + c->w_pad;
    in->x_stride = c->k + c->x_pad;
    in->y_stride = c->n + c->y_pad;
    float *wv = malloc(sizeof(float) * c->n * c->k);
    fill_values(rng, wv, c->n, c->k);
    quantize(wv, c->n, c->k, c->w, c->wl, &in->wq);
    in->w = make_image(in->wq.codes, c->w, c->n, c->k, in->w_stride, c->w_off);
    free(wv);

    float *xv = malloc(sizeof(float) * m * c->k);
    fill_values(rng, xv, m, c->k);
    /* Sums of K products stay in f16 range. */
    for (size_t i = 0; i < (size_t)m * c->k; i++) xv[i] *= 4.0f / sqrtf((float)c->k);
    if (c->x == FP8_F32 || c->x == FP8_F16 || c->x == FP8_BF16) {
        void *packed = encode_float(xv, (size_t)m * c->k, c->x);
        in->x = make_image(packed, c->x, m, c->k, in->x_stride, c->x_off);
        free(packed);
    } else {
        quantize(xv, m, c->k, c->x, c->xl, &in->xq);
        in->x = make_image(in->xq.codes, c->x, m, c->k, in->x_stride, c->x_off);
    }
    free(xv);

    if (c->bias) {
        float *bv = malloc(sizeof(float) * c->n);
        for (uint32_t i = 0; i < c->n; i++) bv[i] = test_rng_normal(rng);
        in->bias = encode_float(bv, c->n, c->bias);
        in->bias_bytes = storage(c->bias, c->n);
        free(bv);
    }
    in->y0.bytes = c->y_off + storage(c->y, (size_t)(m - 1) * in->y_stride + c->n) + 16;
    in->y0.data = malloc(in->y0.bytes);
    memset(in->y0.data, 0x5a, in->y0.bytes); /* sentinel: must survive outside Y's elements */
}

static void free_inputs(inputs *in)
{
    free(in->w.data); free(in->x.data); free(in->y0.data); free(in->bias);
    free(in->wq.codes); free(in->wq.scales); free(in->xq.codes); free(in->xq.scales);
}

static fp8_buffer *upload_scales(fp8_device *dev, const qmat *q)
{
    if (!q->scales) return NULL;
    uint8_t *tmp = malloc(SCALE_OFF + q->scale_bytes);
    memset(tmp, 0xff, SCALE_OFF);
    memcpy(tmp + SCALE_OFF, q->scales, q->scale_bytes);
    fp8_buffer *b = upload(dev, tmp, SCALE_OFF + q->scale_bytes);
    free(tmp);
    return b;
}

static void upload_ops(fp8_device *dev, const inputs *in, dev_ops *o)
{
    o->w = upload(dev, in->w.data, in->w.bytes);
    o->x = upload(dev, in->x.data, in->x.bytes);
    o->y = upload(dev, in->y0.data, in->y0.bytes);
    o->ws = upload_scales(dev, &in->wq);
    o->xs = upload_scales(dev, &in->xq);
    o->b = in->bias ? upload(dev, in->bias, in->bias_bytes) : NULL;
}

static fp8_gemm_desc make_desc(const gcase *c, const inputs *in, const dev_ops *o, fp8_path path)
{
    fp8_gemm_desc g = {.m = in->m, .n = c->n, .k = c->k, .path = path};
    g.w = (fp8_operand){o->w, c->w_off, c->w, in->w_stride};
    g.w_scales = (fp8_scales){c->wl, o->ws, in->wq.scales ? SCALE_OFF : 0, in->wq.tensor_scale};
    g.x = (fp8_operand){o->x, c->x_off, c->x, in->x_stride};
    if (in->xq.codes) g.x_scales = (fp8_scales){c->xl, o->xs, in->xq.scales ? SCALE_OFF : 0, in->xq.tensor_scale};
    g.y = (fp8_operand){o->y, c->y_off, c->y, in->y_stride};
    if (o->b) g.bias = (fp8_operand){o->b, 0, c->bias, 0};
    return g;
}

/* Y's elements as floats (row-major M x N) from a buffer image. */
static void extract_y(const gcase *c, const inputs *in, const uint8_t *img, float *out)
{
    for (uint32_t r = 0; r < in->m; r++) {
        const uint8_t *row = img + c->y_off + storage(c->y, (size_t)r * in->y_stride);
        CHECK_STATUS(fp8_decode_array(c->y, row, storage(c->y, c->n), c->n, out + (size_t)r * c->n), FP8_OK);
    }
}

/* Bytes of the image outside Y's elements still hold the sentinel. */
static bool sentinel_intact(const gcase *c, const inputs *in, const uint8_t *img)
{
    const size_t es = storage(c->y, 1);
    for (size_t i = 0; i < in->y0.bytes; i++) {
        bool inside = false;
        if (i >= c->y_off) {
            const size_t e = (i - c->y_off) / es;
            inside = e / in->y_stride < in->m && e % in->y_stride < c->n;
        }
        if (!inside && img[i] != 0x5a) return false;
    }
    return true;
}

static double tolerance(fp8_dtype y)
{
    return y == FP8_F32 ? 1e-5 : y == FP8_F16 ? 2e-3 : 4e-3;
}

static fp8_context *g_ctx;
static fp8_device *g_cl, *g_cpu;

/* Run one case on `path` of the OpenCL device and compare rows `rows[i]` of its result with row i of the
 * CPU oracle's result `ref` (nref rows; rows NULL: every row). */
static void run_path(const gcase *c, const inputs *in, const double *ref, const uint32_t *rows, uint32_t nref,
                     fp8_path path)
{
    dev_ops o = {0};
    upload_ops(g_cl, in, &o);
    fp8_gemm_desc g = make_desc(c, in, &o, path);
    fp8_path chosen = FP8_PATH_AUTO;
    fp8_status st = fp8_gemm_select_path(g_cl, &g, &chosen);
    if (path == FP8_PATH_CL_CLBLAST && st == FP8_ERR_UNSUPPORTED) {
        free_ops(&o);
        return; /* CLBlast not built or this combination not covered: the AUTO run still checks a path */
    }
    CHECK_STATUS(st, FP8_OK);
    st = fp8_gemm(g_cl, &g);
    CHECK(st == FP8_OK, "%s on %s: fp8_gemm returned %s", c->name, fp8_path_name(path), fp8_status_name(st));
    uint8_t *img = malloc(in->y0.bytes);
    CHECK_STATUS(fp8_buffer_read(o.y, 0, img, in->y0.bytes), FP8_OK);
    float *yv = malloc(sizeof(float) * in->m * c->n);
    extract_y(c, in, img, yv);
    size_t nans = 0;
    for (size_t i = 0; i < (size_t)in->m * c->n; i++) nans += isnan(yv[i]) != 0;
    if (rows)
        for (uint32_t i = 0; i < nref; i++) memmove(yv + (size_t)i * c->n, yv + (size_t)rows[i] * c->n, sizeof(float) * c->n);
    const double err = test_rel_frobenius(yv, ref, (size_t)nref * c->n);
    printf("  %-20s %-16s M=%-4u N=%-5u K=%-5u %-5s err %.2e%s\n", c->name, fp8_path_name(chosen), in->m, c->n, c->k,
           fp8_dtype_name(c->y), err, nans ? " NaN!" : "");
    CHECK(nans == 0, "%s on %s: %zu NaN outputs", c->name, fp8_path_name(chosen), nans);
    CHECK(err <= tolerance(c->y), "%s on %s: relative Frobenius error %.3e > %.1e", c->name, fp8_path_name(chosen), err,
          tolerance(c->y));
    CHECK(sentinel_intact(c, in, img), "%s on %s: wrote outside Y", c->name, fp8_path_name(chosen));
    free(yv);
    free(img);
    free_ops(&o);
}

/* The inputs restricted to rows `rows` of X (and of its scales, which are per row or per tensor here). */
static void sample_rows(const gcase *c, const inputs *in, const uint32_t *rows, uint32_t count, inputs *out)
{
    *out = *in;
    out->m = count;
    const size_t sb = storage(c->x, in->x_stride), rb = storage(c->x, c->k);
    uint8_t *packed = malloc(rb * count);
    for (uint32_t i = 0; i < count; i++) memcpy(packed + i * rb, in->x.data + c->x_off + rows[i] * sb, rb);
    out->x = make_image(packed, c->x, count, c->k, in->x_stride, c->x_off);
    free(packed);
    out->xq.scales = NULL;
    if (in->xq.scales) {
        size_t per_row = in->xq.scale_bytes, total = in->xq.scale_bytes;
        if (c->xl.kind == FP8_SCALE_ROW || (c->xl.kind == FP8_SCALE_BLOCK && c->xl.block_rows == 1))
            per_row = in->xq.scale_bytes / in->m, total = per_row * count;
        out->xq.scales = malloc(total);
        out->xq.scale_bytes = total;
        for (uint32_t i = 0; i < count && per_row != in->xq.scale_bytes; i++)
            memcpy((uint8_t *)out->xq.scales + i * per_row, (const uint8_t *)in->xq.scales + rows[i] * per_row, per_row);
        if (per_row == in->xq.scale_bytes) memcpy(out->xq.scales, in->xq.scales, total);
    }
    out->y0.bytes = c->y_off + storage(c->y, (size_t)(count - 1) * in->y_stride + c->n) + 16;
    out->y0.data = malloc(out->y0.bytes);
    memset(out->y0.data, 0x5a, out->y0.bytes);
}

static const fp8_path all_paths[] = {FP8_PATH_CL_GEMV, FP8_PATH_CL_GEMM_TILED, FP8_PATH_CL_CLBLAST, FP8_PATH_AUTO};

/* Case c on the given paths against the CPU oracle. */
static void run_case_on(const gcase *c, test_rng *rng, bool large, const fp8_path *paths, size_t npaths)
{
    const double t0 = test_now();
    inputs in;
    make_inputs(c, c->m, rng, &in);
    /* The oracle, on every row, or on 32 sampled rows of a large M (the CPU would dominate the run). */
    uint32_t rows[32], nref = c->m;
    inputs sub = in;
    const bool sampled = large && c->m > 32;
    if (sampled) {
        nref = 32;
        for (uint32_t i = 0; i < nref; i++) rows[i] = (uint32_t)((uint64_t)i * (c->m - 1) / (nref - 1));
        sample_rows(c, &in, rows, nref, &sub);
    }
    dev_ops o = {0};
    upload_ops(g_cpu, &sub, &o);
    fp8_gemm_desc g = make_desc(c, &sub, &o, FP8_PATH_AUTO);
    CHECK_STATUS(fp8_gemm(g_cpu, &g), FP8_OK);
    uint8_t *img = malloc(sub.y0.bytes);
    CHECK_STATUS(fp8_buffer_read(o.y, 0, img, sub.y0.bytes), FP8_OK);
    float *yv = malloc(sizeof(float) * nref * c->n);
    extract_y(c, &sub, img, yv);
    double *ref = malloc(sizeof(double) * nref * c->n);
    for (size_t i = 0; i < (size_t)nref * c->n; i++) ref[i] = yv[i];
    free_ops(&o);
    if (sampled) {
        free(sub.x.data);
        free(sub.xq.scales);
        free(sub.y0.data);
    }

    for (size_t p = 0; p < npaths; p++) {
        if (large && paths[p] == FP8_PATH_CL_GEMV && c->m > 16) continue; /* rereads W per 16 rows; covered small */
        run_path(c, &in, ref, sampled ? rows : NULL, nref, paths[p]);
    }
    printf("  (%.1f s)\n", test_now() - t0);
    free(ref);
    free(yv);
    free(img);
    free_inputs(&in);
}

/* FP8_TEST_CL_GEMV_ONLY=1: the cases on the GEMV path alone (a GPU check of a GEMV change, where every other
 * path's variants would cost minutes of cold compiles). */
static void run_case(const gcase *c, test_rng *rng, bool large)
{
    static const fp8_path gemv = FP8_PATH_CL_GEMV;
    if (fp8i_env_flag("FP8_TEST_CL_GEMV_ONLY")) run_case_on(c, rng, large, &gemv, 1);
    else run_case_on(c, rng, large, all_paths, sizeof all_paths / sizeof all_paths[0]);
}

/* The cases named in `names` on the GEMV path. */
static void run_named_gemv(const char *const *names, size_t count, test_rng *rng)
{
    const fp8_path gemv = FP8_PATH_CL_GEMV;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        for (size_t j = 0; j < count; j++)
            if (strcmp(cases[i].name, names[j]) == 0) run_case_on(&cases[i], rng, false, &gemv, 1);
}

/* GEMV shapes other than the defaults (through the tuning hook): one row per warp with four loads in flight,
 * eight rows, and 16 tokens of four rows, whose 64 accumulators per lane take two rounds of the reduction; and
 * rows shared along K by two and four warps. Then both weight loads (FP8_CL_GEMV_LDG). */
static void check_gemv_shapes(test_rng *rng)
{
    static const char *const names[] = {"ds-v3 128x128", "per-channel e5m2", "nvfp4 1x16 m16", "generic 3x5 e8m0",
                                        "w8a8 e5m2 x"};
    const fp8i_cl_gemv_shape shapes[] = {{1, 1, 4, 2, 1}, {2, 8, 2, 1, 1}, {16, 4, 1, 2, 1}, {1, 4, 2, 4, 4},
                                         {4, 2, 1, 4, 2}, {16, 4, 1, 2, 2}};
    fp8i_cl_device *d = fp8i_cl_dev(g_cl);
    for (size_t si = 0; si < sizeof shapes / sizeof shapes[0]; si++) {
        d->gemv_shape = shapes[si];
        printf("  gemv shape %u tokens x %u rows, %u loads, %u warps, %u per row group\n", shapes[si].tokens,
               shapes[si].rows, shapes[si].loads, shapes[si].warps, shapes[si].splits);
        run_named_gemv(names, sizeof names / sizeof names[0], rng);
    }
    d->gemv_shape = (fp8i_cl_gemv_shape){0, 0, 0, 0, 0};
    /* The weights through the plain loads and through ld.global.nc (NVIDIA; elsewhere the same kernel twice). */
    for (int ldg = 0; ldg < 2; ldg++) {
        setenv("FP8_CL_GEMV_LDG", ldg ? "1" : "0", 1);
        printf("  gemv weights %s\n", ldg ? "ld.global.nc where PTX runs" : "plain loads");
        run_named_gemv(names, sizeof names / sizeof names[0], rng);
    }
    unsetenv("FP8_CL_GEMV_LDG");
}

/* The tensor-core GEMV's other shapes (through its tuning hook): two row tiles per warp, one, three and eight
 * segments in flight, K shared by two, four and eight warps in both segment orders (three in flight over
 * contiguous runs leaves some warps a partial round or none), and the kernel switched off; a shape set here
 * also runs one FP8 token on it. Where the device runs it (NVIDIA sm_89+), the cases must have built it. */
static void check_gemv_mma_shapes(test_rng *rng)
{
    static const char *const names[] = {"mma e4m3 128x128 m5", "mma mxfp4 m9",       "mma e5m2 channel",
                                        "mma e4m3 tensor m8",  "mma e2m1 2x64 blocks", "mma e4m3 blocks m1",
                                        "mma e5m2 channel m1"};
    const fp8i_cl_gemv_mma_shape shapes[] = {{0, 2, 1, 2, 2}, {0, 1, 8, 1, 1}, {0, 2, 2, 4, 1}, {0, 1, 1, 8, 2},
                                             {0, 1, 3, 4, 2}, {1, 0, 0, 0, 0}};
    fp8i_cl_device *d = fp8i_cl_dev(g_cl);
    for (size_t si = 0; si < sizeof shapes / sizeof shapes[0]; si++) {
        d->gemv_mma = shapes[si];
        printf("  gemv_mma shape: off %u, %u row tiles, %u segments in flight, %u warps per row group, order %u\n",
               shapes[si].off, shapes[si].tiles, shapes[si].loads, shapes[si].splits, shapes[si].order);
        run_named_gemv(names, sizeof names / sizeof names[0], rng);
    }
    d->gemv_mma = (fp8i_cl_gemv_mma_shape){0, 0, 0, 0, 0};
    bool built = false;
    for (uint32_t i = 0; i < d->kernel_count; i++) built = built || strcmp(d->kernels[i].name, "fp8_gemv_mma") == 0;
    printf("  tensor-core GEMV: %s\n", d->ptx_fp8 ? (built ? "ran" : "NOT BUILT") : "not on this device (no PTX FP8)");
    CHECK(built == d->ptx_fp8, "the tensor-core GEMV was %sbuilt on a device %s PTX FP8 conversions", built ? "" : "not ",
          d->ptx_fp8 ? "with" : "without");
}

/* Every code of every weight format, subnormals, NaN and Inf included, as raw bytes: rows r % 4 == 0 hold all
 * 256 byte values, the other rows the same with special codes replaced by 0. Outputs must be NaN exactly where
 * the oracle's are, infinite with the same sign, and close elsewhere. */
static void check_all_codes(void)
{
    const fp8_dtype dts[] = {FP8_E4M3FN, FP8_E5M2, FP8_E4M3FNUZ, FP8_E5M2FNUZ, FP8_E2M1};
    const uint32_t n = 24, k = 512, m = 3;
    for (size_t t = 0; t < sizeof dts / sizeof dts[0]; t++) {
        const fp8_dtype dt = dts[t];
        const size_t row_bytes = storage(dt, k);
        uint8_t *w = malloc(n * row_bytes);
        for (uint32_t r = 0; r < n; r++)
            for (size_t j = 0; j < row_bytes; j++) {
                uint8_t c = (uint8_t)(j * 73 + r * 11);
                const bool special = dt != FP8_E2M1 && !isfinite(fp8_decode_value(dt, c));
                w[r * row_bytes + j] = special && r % 4 ? 0 : c;
            }
        float xv[3 * 512];
        test_rng rng = {77 + t};
        for (size_t i = 0; i < m * k; i++) xv[i] = test_rng_uniform(&rng, 0.01f, 0.02f);
        /* f32 activations, and f16 ones, which the tensor-core GEMV takes for the formats it converts */
        for (int xi = 0; xi < (dt == FP8_E4M3FNUZ || dt == FP8_E5M2FNUZ ? 1 : 2); xi++) {
            const fp8_dtype xdt = xi ? FP8_F16 : FP8_F32;
            const gcase c = {"all codes", m, n, k, dt, L_NONE, xdt, L_NONE, FP8_F32, 0, 0, 0, 0, 0, 0, 0};
            inputs in = {0};
            in.m = m;
            in.w_stride = in.x_stride = k;
            in.y_stride = n;
            in.w = make_image(w, dt, n, k, k, 0);
            void *xp = encode_float(xv, (size_t)m * k, xdt);
            in.x = make_image(xp, xdt, m, k, k, 0);
            free(xp);
            in.y0.bytes = storage(FP8_F32, (size_t)m * n) + 16;
            in.y0.data = malloc(in.y0.bytes);
            memset(in.y0.data, 0x5a, in.y0.bytes);
            float ref[3 * 24], got[3 * 24];
            for (int dev = 0; dev < 4; dev++) {
                const fp8_path paths[] = {FP8_PATH_CPU_REFERENCE, FP8_PATH_CL_GEMV, FP8_PATH_CL_GEMM_TILED, FP8_PATH_CL_CLBLAST};
                fp8_device *d = dev == 0 ? g_cpu : g_cl;
                dev_ops o = {0};
                upload_ops(d, &in, &o);
                fp8_gemm_desc g = make_desc(&c, &in, &o, paths[dev]);
                fp8_path chosen;
                if (fp8_gemm_select_path(d, &g, &chosen) != FP8_OK) { free_ops(&o); continue; }
                CHECK_STATUS(fp8_gemm(d, &g), FP8_OK);
                CHECK_STATUS(fp8_buffer_read(o.y, 0, dev == 0 ? ref : got, sizeof ref), FP8_OK);
                free_ops(&o);
                if (dev == 0) continue;
                size_t bad = 0, specials = 0;
                double num = 0, den = 0;
                for (size_t i = 0; i < m * n; i++) {
                    if (isnan(ref[i]) || isinf(ref[i])) {
                        specials++;
                        const bool same = isnan(ref[i]) ? isnan(got[i]) != 0 : got[i] == ref[i];
                        bad += !same;
                    } else {
                        num += ((double)got[i] - ref[i]) * ((double)got[i] - ref[i]);
                        den += (double)ref[i] * ref[i];
                    }
                }
                const double err = den > 0 ? sqrt(num / den) : sqrt(num);
                printf("  all codes %-9s x %-4s %-16s %zu NaN/Inf outputs, err %.2e\n", fp8_dtype_name(dt), fp8_dtype_name(xdt),
                       fp8_path_name(paths[dev]), specials, err);
                CHECK(bad == 0, "all codes %s on %s: %zu NaN/Inf outputs differ from the oracle", fp8_dtype_name(dt),
                      fp8_path_name(paths[dev]), bad);
                CHECK(dt == FP8_E2M1 || specials > 0, "all codes %s: no special outputs, the test lost its point",
                      fp8_dtype_name(dt));
                CHECK(err <= 1e-5, "all codes %s x %s on %s: error %.2e", fp8_dtype_name(dt), fp8_dtype_name(xdt),
                      fp8_path_name(paths[dev]), err);
            }
            free(in.w.data); free(in.x.data); free(in.y0.data);
        }
        free(w);
    }
}

/* ---- runtime checks ---------------------------------------------------------------------------------- */

static char g_log_seen[4096];
static void capture_log(void *user, fp8_log_level level, const char *message)
{
    (void)user;
    if (strstr(message, "build log") || strstr(message, "loaded from the cache") || strstr(message, "largest single") ||
        strstr(message, "opencl: measured"))
        strncat(g_log_seen, message, sizeof g_log_seen - strlen(g_log_seen) - 2), strcat(g_log_seen, "\n");
    if (level >= FP8_LOG_ERROR && !strstr(message, "build log") && getenv("FP8_TEST_VERBOSE"))
        fprintf(stderr, "[libfp8] %s\n", message);
}

static void check_build_failure(void)
{
    g_log_seen[0] = '\0';
    const char *broken[] = {"kernel void broken(global float *p) { p[0] = undefined_name; }"};
    cl_program prog = NULL;
    CHECK_STATUS(fp8i_cl_build(g_cl, broken, 1, "", &prog), FP8_ERR_KERNEL_BUILD);
    CHECK(prog == NULL, "failed build returned a program");
    CHECK(strstr(g_log_seen, "build log") != NULL, "the build log was not passed to the log callback");

    /* The same through fp8_gemm: a broken define makes every GEMM program fail to build. */
    fp8i_cl_device *d = fp8i_cl_dev(g_cl);
    fp8i_strlcpy(d->test_extra_options, "-Dkernel=)", sizeof d->test_extra_options);
    test_rng rng = {11};
    const gcase c = {"broken", 1, 8, 32, FP8_E4M3FN, L_NONE, FP8_F32, L_NONE, FP8_F32, 0, 0, 0, 0, 0, 0, 0};
    inputs in;
    make_inputs(&c, 1, &rng, &in);
    dev_ops o = {0};
    upload_ops(g_cl, &in, &o);
    fp8_gemm_desc g = make_desc(&c, &in, &o, FP8_PATH_CL_GEMV);
    CHECK_STATUS(fp8_gemm(g_cl, &g), FP8_ERR_KERNEL_BUILD);
    d->test_extra_options[0] = '\0';
    CHECK_STATUS(fp8_gemm(g_cl, &g), FP8_OK);
    free_ops(&o);
    free_inputs(&in);
}

static bool dir_has(const char *dir, const char *prefix, const char *suffix)
{
    DIR *dp = opendir(dir);
    if (!dp) return false;
    bool found = false;
    for (struct dirent *e; (e = readdir(dp)) != NULL;)
        if (strncmp(e->d_name, prefix, strlen(prefix)) == 0 && strstr(e->d_name, suffix)) found = true;
    closedir(dp);
    return found;
}

/* The automatic path of `dev` for an M x N x K GEMM (E4M3 per-channel weights, f32 activations). */
static fp8_path auto_path(fp8_device *dev, uint32_t m, uint32_t n, uint32_t k)
{
    test_rng rng = {5};
    const gcase c = {"choice", m, n, k, FP8_E4M3FN, L_ROW, FP8_F32, L_NONE, FP8_F32, 0, 0, 0, 0, 0, 0, 0};
    inputs in;
    make_inputs(&c, c.m, &rng, &in);
    dev_ops o = {0};
    upload_ops(dev, &in, &o);
    fp8_gemm_desc g = make_desc(&c, &in, &o, FP8_PATH_AUTO);
    fp8_path p = FP8_PATH_AUTO;
    CHECK_STATUS(fp8_gemm_select_path(dev, &g, &p), FP8_OK);
    free_ops(&o);
    free_inputs(&in);
    return p;
}

/* An automatic path choice for a large-M GEMM (measured where CLBlast is built). */
static fp8_path auto_choice(fp8_device *dev) { return auto_path(dev, 64, 96, 128); }

/* Decode-sized M goes to the GEMV: up to 16 tokens, up to 4 on CPU devices (lib/ops/ops.h), whose GEMV
 * re-decodes the weights for every block of four tokens. */
static void check_decode_choice(const fp8_device_info *info)
{
    const uint32_t limit = info->type == FP8_DEVICE_CPU ? 4 : 16;
    const uint32_t ms[] = {1, 4, 5, 8, 16, 17};
    for (size_t i = 0; i < sizeof ms / sizeof ms[0]; i++) {
        const fp8_path p = auto_path(g_cl, ms[i], 64, 128);
        CHECK((p == FP8_PATH_CL_GEMV) == (ms[i] <= limit), "M=%u: automatic path %s (GEMV up to M=%u here)", ms[i],
              fp8_path_name(p), limit);
    }
}

/* The kernels take NVIDIA's PTX shuffles and FP8 conversions exactly where the device layer verified them, and
 * FP8_CL_PTX=0 takes both away (so that the portable kernels can be checked on the same device). */
static void check_decode_options(const fp8_device_info *info)
{
    const fp8i_cl_device *d = fp8i_cl_dev(g_cl);
    const char *env = getenv("FP8_CL_PTX");
    const bool off = env && strcmp(env, "0") == 0;
    printf("decode options:%s\n", d->decode_options[0] ? d->decode_options : " (none)");
    CHECK(!!strstr(d->decode_options, "FP8K_PTX=1") == (!off && info->caps.cl_inline_ptx), "inline PTX %d, options %s",
          info->caps.cl_inline_ptx, d->decode_options);
    CHECK(!!strstr(d->decode_options, "FP8K_PTX_FP8=1") == (!off && info->caps.cl_inline_ptx && info->caps.cl_ptx_fp8_convert),
          "PTX FP8 cvt verified %d, options %s", info->caps.cl_ptx_fp8_convert, d->decode_options);
}

/* A fresh cache directory: the first run writes a program binary, a second context loads it. The same for the
 * measured path choice of a large-M shape (where CLBlast is built). */
static void check_binary_cache(const char *filter)
{
    char dir[] = "/tmp/fp8-cl-cache-XXXXXX";
    if (!mkdtemp(dir)) { CHECK(0, "mkdtemp failed"); return; }
    for (int round = 0; round < 2; round++) {
        g_log_seen[0] = '\0';
        fp8_context_options opts = {.log = capture_log, .log_level = FP8_LOG_DEBUG, .cache_dir = dir,
                                    .disable_backends = 1u << FP8_BACKEND_VULKAN};
        fp8_context *ctx = NULL;
        CHECK_STATUS(fp8_context_create(&opts, &ctx), FP8_OK);
        uint32_t idx = 0;
        fp8_device_filter f = {.backend = FP8_BACKEND_OPENCL, .name_contains = filter};
        CHECK_STATUS(fp8_context_find_device(ctx, &f, &idx), FP8_OK);
        fp8_device *dev = NULL;
        CHECK_STATUS(fp8_device_open(ctx, idx, &dev), FP8_OK);
        if (!dev) { fp8_context_destroy(ctx); break; }
        cl_kernel k;
        CHECK_STATUS(fp8i_cl_kernel(dev, FP8I_CL_PROG_UTIL, "", "fp8_fma_peak", &k), FP8_OK);
        if (round == 0) CHECK(dir_has(dir, "opencl-", ".bin"), "no program binary appeared in %s", dir);
        else CHECK(strstr(g_log_seen, "loaded from the cache") != NULL, "the second build did not hit the cache");
        const fp8_path p = auto_choice(dev);
        CHECK(p == FP8_PATH_CL_GEMM_TILED || p == FP8_PATH_CL_CLBLAST, "M=64 chose %s", fp8_path_name(p));
        if (fp8_build_features() & FP8_BUILD_CLBLAST) {
            const bool measured = strstr(g_log_seen, "opencl: measured") != NULL;
            if (round == 0) {
                CHECK(measured, "no measurement of the GEMM paths on first use");
                CHECK(dir_has(dir, "opencl-tune-", ".txt"), "the measured choice was not saved in %s", dir);
            } else {
                CHECK(!measured, "the saved path choice was measured again");
            }
        }
        fp8_device_close(dev);
        fp8_context_destroy(ctx);
    }
    DIR *dp = opendir(dir);
    if (dp) {
        char path[600];
        for (struct dirent *e; (e = readdir(dp)) != NULL;)
            if (e->d_name[0] != '.') snprintf(path, sizeof path, "%s/%s", dir, e->d_name), remove(path);
        closedir(dp);
    }
    rmdir(dir);
}

static void check_runtime(void)
{
    fp8_device_info info;
    CHECK_STATUS(fp8_device_get_info(g_cl, &info, NULL), FP8_OK);
    /* Over the largest allocation: the front door and the backend's own allocator both refuse. */
    fp8_buffer *big = NULL;
    if (info.max_allocation_bytes && info.max_allocation_bytes < SIZE_MAX) {
        CHECK_STATUS(fp8_buffer_create(g_cl, (size_t)info.max_allocation_bytes + 1, &big), FP8_ERR_TOO_LARGE);
        CHECK(big == NULL, "a buffer came back");
        g_log_seen[0] = '\0';
        cl_mem mem = NULL;
        CHECK_STATUS(fp8i_cl_alloc(g_cl, (size_t)info.max_allocation_bytes + 1, &mem), FP8_ERR_TOO_LARGE);
        CHECK(strstr(g_log_seen, "largest single") != NULL, "no clear message for the oversized allocation");
    }
    /* Write, device copy, read back; the read waits for the copy. */
    uint32_t src[256], dst[256];
    for (int i = 0; i < 256; i++) src[i] = 0x9e3779b9u * (uint32_t)i;
    fp8_buffer *a = NULL, *b = NULL;
    CHECK_STATUS(fp8_buffer_create(g_cl, sizeof src, &a), FP8_OK);
    CHECK_STATUS(fp8_buffer_create(g_cl, sizeof src + 64, &b), FP8_OK);
    if (a && b) {
        CHECK_STATUS(fp8_buffer_write(a, 0, src, sizeof src), FP8_OK);
        CHECK_STATUS(fp8_device_timer_start(g_cl), FP8_OK);
        CHECK_STATUS(fp8_buffer_copy(b, 64, a, 0, sizeof src), FP8_OK);
        double ns = -1;
        CHECK_STATUS(fp8_device_timer_stop(g_cl, &ns), FP8_OK);
        CHECK(ns > 0, "the timer measured %.1f ns for a copy", ns);
        /* A region of several commands keeps one event, its first command's: an event per command doubled the
         * NVIDIA driver's enqueue time and starved short kernels (BENCHMARKS, run 23). */
        const fp8i_cl_device *d = fp8i_cl_dev(g_cl);
        CHECK_STATUS(fp8_device_timer_start(g_cl), FP8_OK);
        for (int i = 0; i < 3; i++) CHECK_STATUS(fp8_buffer_copy(b, 64, a, 0, sizeof src), FP8_OK);
        CHECK(d->ev_first != NULL && d->ev_last == NULL && d->ev_new == NULL, "timed region holds events %p %p %p",
              (void *)d->ev_first, (void *)d->ev_last, (void *)d->ev_new);
        double ns3 = -1;
        CHECK_STATUS(fp8_device_timer_stop(g_cl, &ns3), FP8_OK);
        CHECK(ns3 > 0, "the timer measured %.1f ns for three copies", ns3);
        CHECK(d->ev_first == NULL && d->ev_last == NULL, "events left after timer_stop");
        CHECK_STATUS(fp8_buffer_read(b, 64, dst, sizeof dst), FP8_OK);
        CHECK(memcmp(src, dst, sizeof src) == 0, "copy round trip differs");
        CHECK_STATUS(fp8_buffer_copy(a, 0, a, 16, 64), FP8_ERR_INVALID_ARGUMENT);
        CHECK_STATUS(fp8_device_synchronize(g_cl), FP8_OK);
    }
    fp8_buffer_free(a);
    fp8_buffer_free(b);
}

int main(void)
{
    setvbuf(stdout, NULL, _IOLBF, 0); /* progress survives a timeout */
    const bool large = fp8i_env_flag("FP8_TEST_CL_LARGE");
    fp8_context_options opts = {.log = capture_log, .log_level = FP8_LOG_INFO,
                                .disable_backends = 1u << FP8_BACKEND_VULKAN};
    CHECK_STATUS(fp8_context_create(&opts, &g_ctx), FP8_OK);
    const uint32_t idx = test_find_opencl_device(g_ctx);
    uint32_t cpu = 0;
    fp8_device_filter fc = {.backend = FP8_BACKEND_CPU};
    CHECK_STATUS(fp8_context_find_device(g_ctx, &fc, &cpu), FP8_OK);
    CHECK_STATUS(fp8_device_open(g_ctx, idx, &g_cl), FP8_OK);
    CHECK_STATUS(fp8_device_open(g_ctx, cpu, &g_cpu), FP8_OK);
    if (!g_cl || !g_cpu) return test_finish("cl_gemm");
    fp8_device_info info;
    fp8_device_get_info(g_cl, &info, NULL);
    printf("OpenCL device: %s (%s)\n", info.name, info.api_version);

    check_runtime();
    check_decode_choice(&info);
    check_decode_options(&info);
    check_build_failure();
    check_all_codes();

    test_rng rng = {0x1234567};
    if (large) {
        for (size_t i = 0; i < sizeof large_cases / sizeof large_cases[0]; i++) run_case(&large_cases[i], &rng, true);
    } else {
        for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) run_case(&cases[i], &rng, false);
        check_gemv_shapes(&rng);
        check_gemv_mma_shapes(&rng);
    }
    fp8_device_close(g_cl);
    fp8_device_close(g_cpu);
    fp8_context_destroy(g_ctx);

    if (!large) check_binary_cache(getenv("FP8_TEST_CL_DEVICE"));
    return test_finish("cl_gemm");
}
