/* Every documented error path returns its status and writes nothing: host calls write into caller
 * memory framed by guard bytes, device calls into buffers whose whole contents are checked after. */
#include "test_util.h"

#include <math.h>
#include <string.h>

#define GUARD 64
#define FILL 0xA5
#define CAP 4096

/* ------------------------------------------------------------------------------------------------
 * Host calls: quantize, dequantize, codec arrays, scale counts.
 * ---------------------------------------------------------------------------------------------- */

/* Caller memory for one host call: dst and scale with guards on both sides, and a tensor_scale. */
typedef struct host_mem {
    uint8_t dst[GUARD + CAP + GUARD];
    uint8_t scale[GUARD + CAP + GUARD];
    float tensor_scale;
} host_mem;

static host_mem hm;

static void host_reset(void)
{
    memset(hm.dst, FILL, sizeof hm.dst);
    memset(hm.scale, FILL, sizeof hm.scale);
    hm.tensor_scale = -123.0f;
}

/* After a failed call nothing may have changed at all; after a good one, only inside the capacities. */
static bool host_untouched(size_t dst_cap, size_t scale_cap)
{
    for (size_t i = 0; i < sizeof hm.dst; i++)
        if ((i < GUARD || i >= GUARD + dst_cap) && hm.dst[i] != FILL) return false;
    for (size_t i = 0; i < sizeof hm.scale; i++)
        if ((i < GUARD || i >= GUARD + scale_cap) && hm.scale[i] != FILL) return false;
    return dst_cap || scale_cap || hm.tensor_scale == -123.0f;
}

static float src_f32[64 * 64];

/* A valid quantization of a 4 x 6 f32 matrix to E4M3 with per-row f32 scales, into hm. */
static fp8_quantize_desc good_quantize(void)
{
    host_reset();
    return (fp8_quantize_desc){
        .rows = 4, .cols = 6, .src_dtype = FP8_F32, .src = src_f32, .dst_dtype = FP8_E4M3FN,
        .dst = hm.dst + GUARD, .dst_bytes = 24, .scale_layout = {FP8_SCALE_ROW, FP8_F32, 0, 0},
        .scale = hm.scale + GUARD, .scale_bytes = 16, .tensor_scale = &hm.tensor_scale,
    };
}

#define QUANTIZE_EXPECT(mutation, expected)                                                                          \
    do {                                                                                                             \
        fp8_quantize_desc d = good_quantize();                                                                       \
        mutation;                                                                                                    \
        CHECK_STATUS(fp8_quantize(&d), expected);                                                                    \
        CHECK(host_untouched(0, 0), "fp8_quantize with `%s` wrote into caller memory", #mutation);                   \
    } while (0)

static void test_quantize(void)
{
    test_rng rng = {7};
    for (size_t i = 0; i < sizeof src_f32 / sizeof src_f32[0]; i++) src_f32[i] = test_rng_normal(&rng);

    fp8_quantize_desc ok = good_quantize();
    CHECK_STATUS(fp8_quantize(&ok), FP8_OK);
    CHECK(host_untouched(24, 16), "a good quantize wrote outside dst[24] / scale[16]");

    CHECK_STATUS(fp8_quantize(NULL), FP8_ERR_NULL_POINTER);
    CHECK_STATUS(fp8_dequantize(NULL), FP8_ERR_NULL_POINTER);
    /* NULL pointers and zero sizes */
    QUANTIZE_EXPECT(d.src = NULL, FP8_ERR_NULL_POINTER);
    QUANTIZE_EXPECT(d.dst = NULL, FP8_ERR_NULL_POINTER);
    QUANTIZE_EXPECT(d.scale = NULL, FP8_ERR_NULL_POINTER);
    QUANTIZE_EXPECT((d.scale_layout.dtype = FP8_E4M3FN, d.scale_bytes = 4, d.tensor_scale = NULL), FP8_ERR_NULL_POINTER);
    QUANTIZE_EXPECT(d.rows = 0, FP8_ERR_SHAPE);
    QUANTIZE_EXPECT(d.cols = 0, FP8_ERR_SHAPE);
    /* dtypes */
    QUANTIZE_EXPECT(d.src_dtype = FP8_E4M3FN, FP8_ERR_UNSUPPORTED_DTYPE);
    QUANTIZE_EXPECT(d.src_dtype = (fp8_dtype)99, FP8_ERR_UNSUPPORTED_DTYPE);
    QUANTIZE_EXPECT(d.src_dtype = (fp8_dtype)-1, FP8_ERR_UNSUPPORTED_DTYPE);
    QUANTIZE_EXPECT(d.dst_dtype = FP8_F16, FP8_ERR_UNSUPPORTED_DTYPE);
    QUANTIZE_EXPECT(d.dst_dtype = FP8_E8M0, FP8_ERR_UNSUPPORTED_DTYPE);
    QUANTIZE_EXPECT(d.dst_dtype = FP8_I8, FP8_ERR_UNSUPPORTED_DTYPE);
    QUANTIZE_EXPECT(d.dst_dtype = FP8_DTYPE_INVALID, FP8_ERR_UNSUPPORTED_DTYPE);
    /* strides */
    QUANTIZE_EXPECT(d.src_row_stride = 5, FP8_ERR_STRIDE);
    QUANTIZE_EXPECT(d.dst_row_stride = 5, FP8_ERR_STRIDE);
    QUANTIZE_EXPECT((d.dst_dtype = FP8_E2M1, d.dst_row_stride = 7), FP8_ERR_STRIDE);
    QUANTIZE_EXPECT((d.dst_dtype = FP8_E2M1, d.cols = 5), FP8_ERR_STRIDE); /* packed odd rows: stride 5 */
    /* sizes */
    QUANTIZE_EXPECT(d.dst_bytes = 23, FP8_ERR_BUFFER_TOO_SMALL);
    QUANTIZE_EXPECT((d.dst_row_stride = 8, d.dst_bytes = 29), FP8_ERR_BUFFER_TOO_SMALL); /* needs 3*8+6 = 30 */
    QUANTIZE_EXPECT((d.dst_dtype = FP8_E2M1, d.dst_bytes = 11), FP8_ERR_BUFFER_TOO_SMALL);
    QUANTIZE_EXPECT((d.rows = 3, d.cols = 5, d.dst_dtype = FP8_E2M1, d.dst_row_stride = 6, d.dst_bytes = 8,
                     d.scale_bytes = 12), FP8_ERR_BUFFER_TOO_SMALL); /* needs ceil((2*6+5)/2) = 9 */
    QUANTIZE_EXPECT(d.scale_bytes = 15, FP8_ERR_BUFFER_TOO_SMALL);
    QUANTIZE_EXPECT((d.scale_layout = (fp8_scale_layout){FP8_SCALE_BLOCK, FP8_E8M0, 3, 4}, d.scale_bytes = 3),
                    FP8_ERR_BUFFER_TOO_SMALL); /* 2 x 2 blocks */
    /* extents beyond SIZE_MAX through huge strides: must fail before touching memory */
    QUANTIZE_EXPECT((d.rows = 3, d.src_row_stride = SIZE_MAX / 8), FP8_ERR_SIZE_OVERFLOW);
    QUANTIZE_EXPECT((d.rows = 3, d.dst_row_stride = SIZE_MAX / 2 + 1, d.dst_bytes = SIZE_MAX), FP8_ERR_SIZE_OVERFLOW);
    QUANTIZE_EXPECT((d.rows = 3, d.src_dtype = FP8_F16, d.src_row_stride = SIZE_MAX / 3), FP8_ERR_SIZE_OVERFLOW);
    /* scale layouts */
    QUANTIZE_EXPECT(d.scale_layout.kind = (fp8_scale_kind)99, FP8_ERR_SCALE_LAYOUT);
    QUANTIZE_EXPECT(d.scale_layout.kind = (fp8_scale_kind)-1, FP8_ERR_SCALE_LAYOUT);
    QUANTIZE_EXPECT(d.scale_layout.dtype = FP8_F16, FP8_ERR_SCALE_LAYOUT);
    QUANTIZE_EXPECT(d.scale_layout.dtype = FP8_E5M2, FP8_ERR_SCALE_LAYOUT);
    QUANTIZE_EXPECT(d.scale_layout.dtype = (fp8_dtype)77, FP8_ERR_SCALE_LAYOUT);
    QUANTIZE_EXPECT((d.scale_layout = (fp8_scale_layout){FP8_SCALE_BLOCK, FP8_F32, 0, 4}), FP8_ERR_SCALE_LAYOUT);
    QUANTIZE_EXPECT((d.scale_layout = (fp8_scale_layout){FP8_SCALE_BLOCK, FP8_F32, 4, 0}), FP8_ERR_SCALE_LAYOUT);

    /* Non-finite sources: the whole source is checked before anything is written. */
    static float bad[24];
    static uint16_t bad16[24];
    const float nonfinite[] = {NAN, -NAN, INFINITY, -INFINITY};
    for (int k = 0; k < 4; k++)
        for (int at = 0; at < 24; at += 23) {
            for (int i = 0; i < 24; i++) bad[i] = (float)i - 11.5f;
            bad[at] = nonfinite[k];
            QUANTIZE_EXPECT(d.src = bad, FP8_ERR_NOT_FINITE);
            QUANTIZE_EXPECT((d.src = bad, d.scale_layout = (fp8_scale_layout){0}), FP8_ERR_NOT_FINITE);
            QUANTIZE_EXPECT((d.src = bad, d.scale_layout.dtype = FP8_E4M3FN, d.scale_bytes = 4), FP8_ERR_NOT_FINITE);
            for (int i = 0; i < 24; i++)
                bad16[i] = (uint16_t)fp8_encode_value(FP8_F16, bad[i], FP8_OVERFLOW_CAST);
            QUANTIZE_EXPECT((d.src = bad16, d.src_dtype = FP8_F16), FP8_ERR_NOT_FINITE);
            for (int i = 0; i < 24; i++)
                bad16[i] = (uint16_t)fp8_encode_value(FP8_BF16, bad[i], FP8_OVERFLOW_CAST);
            QUANTIZE_EXPECT((d.src = bad16, d.src_dtype = FP8_BF16), FP8_ERR_NOT_FINITE);
        }
    /* f16 overflow is an Inf, not a large number: the f16 code 0x7c00 must be refused too. */
    for (int i = 0; i < 24; i++) bad16[i] = 0x3c00;
    bad16[5] = 0x7c00;
    QUANTIZE_EXPECT((d.src = bad16, d.src_dtype = FP8_F16), FP8_ERR_NOT_FINITE);
}

#define DEQUANTIZE_EXPECT(mutation, expected)                                                                        \
    do {                                                                                                             \
        fp8_quantize_desc d = good_dequantize(codes, scales, &ts);                                                   \
        mutation;                                                                                                    \
        CHECK_STATUS(fp8_dequantize(&d), expected);                                                                  \
        CHECK(host_untouched(0, 0), "fp8_dequantize with `%s` wrote into caller memory", #mutation);                 \
    } while (0)

static fp8_quantize_desc good_dequantize(const uint8_t *codes, const float *scales, float *ts)
{
    host_reset();
    return (fp8_quantize_desc){
        .rows = 4, .cols = 6, .src_dtype = FP8_E4M3FN, .src = codes, .dst_dtype = FP8_F32, .dst = hm.dst + GUARD,
        .dst_bytes = 96, .scale_layout = {FP8_SCALE_ROW, FP8_F32, 0, 0}, .scale = (void *)scales,
        .scale_bytes = 16, .tensor_scale = ts,
    };
}

static void test_dequantize(void)
{
    uint8_t codes[64];
    float scales[4] = {1, 2, 0.5f, 3}, ts = 0;
    for (int i = 0; i < 64; i++) codes[i] = (uint8_t)(i * 3);
    fp8_quantize_desc ok = good_dequantize(codes, scales, &ts);
    CHECK_STATUS(fp8_dequantize(&ok), FP8_OK);
    CHECK(host_untouched(96, 0), "a good dequantize wrote outside dst[96]");

    DEQUANTIZE_EXPECT(d.src = NULL, FP8_ERR_NULL_POINTER);
    DEQUANTIZE_EXPECT(d.dst = NULL, FP8_ERR_NULL_POINTER);
    DEQUANTIZE_EXPECT(d.scale = NULL, FP8_ERR_NULL_POINTER);
    DEQUANTIZE_EXPECT(d.rows = 0, FP8_ERR_SHAPE);
    DEQUANTIZE_EXPECT(d.src_dtype = FP8_F32, FP8_ERR_UNSUPPORTED_DTYPE);
    DEQUANTIZE_EXPECT(d.dst_dtype = FP8_F16, FP8_ERR_UNSUPPORTED_DTYPE);
    DEQUANTIZE_EXPECT(d.dst_dtype = FP8_E4M3FN, FP8_ERR_UNSUPPORTED_DTYPE);
    DEQUANTIZE_EXPECT(d.dst_bytes = 95, FP8_ERR_BUFFER_TOO_SMALL);
    DEQUANTIZE_EXPECT((d.dst_row_stride = 7, d.dst_bytes = 4 * 27 - 1), FP8_ERR_BUFFER_TOO_SMALL);
    DEQUANTIZE_EXPECT(d.dst_row_stride = 5, FP8_ERR_STRIDE);
    DEQUANTIZE_EXPECT((d.src_dtype = FP8_E2M1, d.src_row_stride = 7), FP8_ERR_STRIDE);
    DEQUANTIZE_EXPECT(d.scale_bytes = 12, FP8_ERR_BUFFER_TOO_SMALL);
    DEQUANTIZE_EXPECT((d.rows = 3, d.dst_row_stride = SIZE_MAX / 4, d.dst_bytes = SIZE_MAX), FP8_ERR_SIZE_OVERFLOW);
    DEQUANTIZE_EXPECT((d.rows = 3, d.src_row_stride = SIZE_MAX / 2 + 1), FP8_ERR_SIZE_OVERFLOW);
    DEQUANTIZE_EXPECT((d.scale_layout.dtype = FP8_E4M3FN, d.scale_bytes = 4, d.tensor_scale = NULL), FP8_ERR_NULL_POINTER);
    const float bad_ts[] = {NAN, INFINITY, -INFINITY};
    for (int k = 0; k < 3; k++) {
        float t = bad_ts[k];
        DEQUANTIZE_EXPECT(d.tensor_scale = &t, FP8_ERR_NOT_FINITE);
        DEQUANTIZE_EXPECT((d.tensor_scale = &t, d.scale_layout.dtype = FP8_E4M3FN, d.scale_bytes = 4), FP8_ERR_NOT_FINITE);
    }
}

static void test_codec_and_counts(void)
{
    const float src[8] = {1, 2, 3, 4, 5, 6, 7, 8};
    host_reset();
    CHECK_STATUS(fp8_encode_array(FP8_E4M3FN, src, 8, hm.dst + GUARD, 7, FP8_OVERFLOW_SATURATE), FP8_ERR_BUFFER_TOO_SMALL);
    CHECK_STATUS(fp8_encode_array(FP8_E2M1, src, 7, hm.dst + GUARD, 3, FP8_OVERFLOW_SATURATE), FP8_ERR_BUFFER_TOO_SMALL);
    CHECK_STATUS(fp8_encode_array(FP8_F16, src, SIZE_MAX / 2 + 1, hm.dst + GUARD, SIZE_MAX, FP8_OVERFLOW_SATURATE),
                 FP8_ERR_SIZE_OVERFLOW);
    CHECK_STATUS(fp8_encode_array(FP8_I8, src, 8, hm.dst + GUARD, 8, FP8_OVERFLOW_SATURATE), FP8_ERR_UNSUPPORTED_DTYPE);
    CHECK_STATUS(fp8_encode_array(FP8_E4M3FN, src, 8, NULL, 8, FP8_OVERFLOW_SATURATE), FP8_ERR_NULL_POINTER);
    CHECK_STATUS(fp8_encode_array(FP8_E4M3FN, src, 8, hm.dst + GUARD, 8, (fp8_overflow)2), FP8_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(fp8_decode_array(FP8_E4M3FN, src, 7, 8, (float *)(void *)(hm.dst + GUARD)), FP8_ERR_BUFFER_TOO_SMALL);
    CHECK_STATUS(fp8_decode_array(FP8_E4M3FN, NULL, 8, 8, (float *)(void *)(hm.dst + GUARD)), FP8_ERR_NULL_POINTER);
    CHECK_STATUS(fp8_decode_array((fp8_dtype)50, src, 8, 8, (float *)(void *)(hm.dst + GUARD)), FP8_ERR_UNSUPPORTED_DTYPE);
    CHECK(host_untouched(0, 0), "a failed codec array call wrote into caller memory");
    CHECK_STATUS(fp8_encode_array(FP8_E2M1, src, 7, hm.dst + GUARD, 4, FP8_OVERFLOW_SATURATE), FP8_OK);
    CHECK(host_untouched(4, 0), "7 E2M1 codes wrote beyond 4 bytes");

    size_t n = 12345, bytes = 12345;
    const fp8_scale_layout row = {FP8_SCALE_ROW, FP8_F32, 0, 0};
    CHECK_STATUS(fp8_scale_count(NULL, 4, 4, &n), FP8_ERR_NULL_POINTER);
    CHECK_STATUS(fp8_scale_count(&row, 4, 4, NULL), FP8_ERR_NULL_POINTER);
    CHECK_STATUS(fp8_scale_count(&row, 0, 4, &n), FP8_ERR_SHAPE);
    CHECK_STATUS(fp8_scale_count(&row, 4, 0, &n), FP8_ERR_SHAPE);
    CHECK_STATUS(fp8_scale_count(&(fp8_scale_layout){(fp8_scale_kind)9, 0, 0, 0}, 4, 4, &n), FP8_ERR_SCALE_LAYOUT);
    CHECK_STATUS(fp8_scale_count(&(fp8_scale_layout){FP8_SCALE_ROW, FP8_BF16, 0, 0}, 4, 4, &n), FP8_ERR_SCALE_LAYOUT);
    CHECK_STATUS(fp8_scale_count(&(fp8_scale_layout){FP8_SCALE_BLOCK, FP8_F32, 0, 1}, 4, 4, &n), FP8_ERR_SCALE_LAYOUT);
    CHECK(n == 12345, "a failed fp8_scale_count wrote its output");
    CHECK_STATUS(fp8_scale_count(&(fp8_scale_layout){FP8_SCALE_BLOCK, FP8_E8M0, 5, 7}, 13, 29, &n), FP8_OK);
    CHECK(n == 3 * 5, "5x7 blocks over 13x29: %zu", n);
    CHECK_STATUS(fp8_scale_count(&(fp8_scale_layout){FP8_SCALE_BLOCK, FP8_E8M0, 1, 1}, UINT32_MAX, UINT32_MAX, &n),
                 sizeof(size_t) >= 8 ? FP8_OK : FP8_ERR_SIZE_OVERFLOW);
    CHECK_STATUS(fp8_dtype_storage_size(FP8_DTYPE_INVALID, 4, &bytes), FP8_ERR_UNSUPPORTED_DTYPE);
    CHECK_STATUS(fp8_dtype_storage_size(FP8_F32, 4, NULL), FP8_ERR_NULL_POINTER);
    CHECK_STATUS(fp8_dtype_storage_size(FP8_F16, SIZE_MAX, &bytes), FP8_ERR_SIZE_OVERFLOW);
    CHECK(bytes == 12345, "a failed fp8_dtype_storage_size wrote its output");
}

/* ------------------------------------------------------------------------------------------------
 * Device calls on the CPU device: buffers and GEMM.
 * ---------------------------------------------------------------------------------------------- */

enum { B_W, B_WS, B_X, B_XS, B_BIAS, B_Y, B_COUNT };
static fp8_buffer *bufs[B_COUNT];
static uint8_t images[B_COUNT][256];
static const size_t sizes[B_COUNT] = {64, 32, 64, 32, 32, 64};

static void reset_buffers(void)
{
    for (int b = 0; b < B_COUNT; b++) {
        memset(images[b], 0x11 * (b + 1), sizes[b]);
        fp8_buffer_write(bufs[b], 0, images[b], sizes[b]);
    }
}

static bool buffers_untouched(void)
{
    uint8_t back[256];
    for (int b = 0; b < B_COUNT; b++) {
        if (fp8_buffer_read(bufs[b], 0, back, sizes[b]) != FP8_OK || memcmp(back, images[b], sizes[b]) != 0) return false;
    }
    return true;
}

/* Y[2,3] = X[2,4] (f32) * W[3,4]^T (E4M3, per-row f32 scales) + bias (f16): every operand in its buffer. */
static fp8_gemm_desc good_gemm(void)
{
    return (fp8_gemm_desc){
        .m = 2, .n = 3, .k = 4,
        .w = {bufs[B_W], 0, FP8_E4M3FN, 0}, .w_scales = {{FP8_SCALE_ROW, FP8_F32, 0, 0}, bufs[B_WS], 0, 0},
        .x = {bufs[B_X], 0, FP8_F32, 0}, .bias = {bufs[B_BIAS], 0, FP8_F16, 0}, .y = {bufs[B_Y], 0, FP8_F32, 0},
    };
}

#define GEMM_EXPECT(mutation, expected)                                                                              \
    do {                                                                                                             \
        fp8_gemm_desc g = good_gemm();                                                                               \
        mutation;                                                                                                    \
        CHECK_STATUS(fp8_gemm(dev, &g), expected);                                                                   \
        fp8_path p_ = (fp8_path)-7;                                                                                  \
        CHECK_STATUS(fp8_gemm_select_path(dev, &g, &p_), expected);                                                  \
        CHECK(p_ == (fp8_path)-7, "a failed fp8_gemm_select_path wrote its output");                                 \
        if (!buffers_untouched()) {                                                                                  \
            CHECK(false, "fp8_gemm with `%s` changed a buffer", #mutation);                                          \
            reset_buffers(); /* one report per culprit */                                                            \
        }                                                                                                            \
    } while (0)

static void test_device(void)
{
    fp8_context_options opt = {.log = NULL};
    fp8_context *ctx = NULL;
    CHECK_STATUS(fp8_context_create(NULL, NULL), FP8_ERR_NULL_POINTER);
    const fp8_allocator half = {NULL, NULL, NULL};
    opt.allocator = &half;
    CHECK_STATUS(fp8_context_create(&opt, &ctx), FP8_ERR_INVALID_ARGUMENT);
    CHECK(ctx == NULL, "a failed fp8_context_create left a context");
    opt.allocator = NULL;
    CHECK_STATUS(fp8_context_create(&opt, &ctx), FP8_OK);
    if (!ctx) test_skip("no context");
    uint32_t idx = 0;
    CHECK_STATUS(fp8_context_find_device(ctx, &(fp8_device_filter){.backend = FP8_BACKEND_CPU}, &idx), FP8_OK);
    CHECK_STATUS(fp8_context_find_device(ctx, &(fp8_device_filter){.name_contains = "no such device, surely"}, &idx),
                 FP8_ERR_NO_DEVICE);
    fp8_device *dev = NULL, *dev2 = NULL, *none = (fp8_device *)&opt;
    CHECK_STATUS(fp8_device_open(ctx, 999, &none), FP8_ERR_NO_DEVICE);
    CHECK(none == NULL, "a failed fp8_device_open must clear *out");
    CHECK_STATUS(fp8_device_open(ctx, idx, NULL), FP8_ERR_NULL_POINTER);
    CHECK_STATUS(fp8_device_open(NULL, idx, &dev), FP8_ERR_NULL_POINTER);
    /* The CPU device opened twice: two devices whose buffers must not mix. */
    CHECK_STATUS(fp8_device_open(ctx, idx, &dev), FP8_OK);
    CHECK_STATUS(fp8_device_open(ctx, idx, &dev2), FP8_OK);
    if (!dev || !dev2) test_skip("the CPU device did not open");
    CHECK_STATUS(fp8_device_get_info(NULL, NULL, NULL), FP8_ERR_NULL_POINTER);

    /* Buffers */
    fp8_buffer *b = (fp8_buffer *)&opt;
    CHECK_STATUS(fp8_buffer_create(dev, 0, &b), FP8_ERR_INVALID_ARGUMENT);
    CHECK(b == NULL, "a failed fp8_buffer_create must clear *out");
    CHECK_STATUS(fp8_buffer_create(NULL, 16, &b), FP8_ERR_NULL_POINTER);
    CHECK_STATUS(fp8_buffer_create(dev, 16, NULL), FP8_ERR_NULL_POINTER);
    CHECK_STATUS(fp8_buffer_create(dev, SIZE_MAX, &b), FP8_ERR_TOO_LARGE);
    for (int i = 0; i < B_COUNT; i++) CHECK_STATUS(fp8_buffer_create(dev, sizes[i], &bufs[i]), FP8_OK);
    fp8_buffer *other = NULL;
    CHECK_STATUS(fp8_buffer_create(dev2, 64, &other), FP8_OK);
    reset_buffers();

    uint8_t host[GUARD + 64 + GUARD];
    memset(host, FILL, sizeof host);
    fp8_buffer *y = bufs[B_Y];
    CHECK_STATUS(fp8_buffer_read(y, 1, host + GUARD, 64), FP8_ERR_BUFFER_TOO_SMALL);
    CHECK_STATUS(fp8_buffer_read(y, 65, host + GUARD, 0), FP8_ERR_BUFFER_TOO_SMALL);
    CHECK_STATUS(fp8_buffer_read(y, SIZE_MAX, host + GUARD, 2), FP8_ERR_BUFFER_TOO_SMALL);
    CHECK_STATUS(fp8_buffer_read(y, 2, host + GUARD, SIZE_MAX), FP8_ERR_BUFFER_TOO_SMALL);
    CHECK_STATUS(fp8_buffer_read(y, 0, NULL, 4), FP8_ERR_NULL_POINTER);
    CHECK_STATUS(fp8_buffer_read(NULL, 0, host + GUARD, 4), FP8_ERR_NULL_POINTER);
    bool intact = true;
    for (size_t i = 0; i < sizeof host; i++) intact = intact && host[i] == FILL;
    CHECK(intact, "a failed fp8_buffer_read wrote into host memory");
    CHECK_STATUS(fp8_buffer_read(y, 0, host + GUARD, 64), FP8_OK);
    intact = true;
    for (size_t i = 0; i < GUARD; i++) intact = intact && host[i] == FILL && host[GUARD + 64 + i] == FILL;
    CHECK(intact, "fp8_buffer_read wrote outside its 64 bytes");
    CHECK_STATUS(fp8_buffer_write(y, 61, host, 4), FP8_ERR_BUFFER_TOO_SMALL);
    CHECK_STATUS(fp8_buffer_write(y, SIZE_MAX - 1, host, 4), FP8_ERR_BUFFER_TOO_SMALL);
    CHECK_STATUS(fp8_buffer_write(y, 0, NULL, 4), FP8_ERR_NULL_POINTER);
    CHECK_STATUS(fp8_buffer_write(NULL, 0, host, 4), FP8_ERR_NULL_POINTER);
    CHECK_STATUS(fp8_buffer_copy(y, 0, other, 0, 8), FP8_ERR_WRONG_DEVICE);
    CHECK_STATUS(fp8_buffer_copy(other, 0, y, 0, 8), FP8_ERR_WRONG_DEVICE);
    CHECK_STATUS(fp8_buffer_copy(y, 0, y, 4, 8), FP8_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(fp8_buffer_copy(y, 8, y, 4, 8), FP8_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(fp8_buffer_copy(y, 60, bufs[B_X], 0, 8), FP8_ERR_BUFFER_TOO_SMALL);
    CHECK_STATUS(fp8_buffer_copy(y, 0, bufs[B_WS], 30, 8), FP8_ERR_BUFFER_TOO_SMALL);
    CHECK_STATUS(fp8_buffer_copy(y, SIZE_MAX, bufs[B_X], 0, 8), FP8_ERR_BUFFER_TOO_SMALL);
    CHECK_STATUS(fp8_buffer_copy(NULL, 0, y, 0, 8), FP8_ERR_NULL_POINTER);
    CHECK(buffers_untouched(), "a failed buffer call changed a buffer");
    CHECK_STATUS(fp8_buffer_copy(y, 0, y, 8, 8), FP8_OK); /* adjacent ranges of one buffer are fine */
    reset_buffers();

    /* The good GEMM runs, and after it Y's bytes (and only those) changed. */
    fp8_gemm_desc ok = good_gemm();
    CHECK_STATUS(fp8_gemm(dev, &ok), FP8_OK);
    fp8_path path = FP8_PATH_AUTO;
    CHECK_STATUS(fp8_gemm_select_path(dev, &ok, &path), FP8_OK);
    CHECK(path == FP8_PATH_CPU_REFERENCE, "CPU path %s", fp8_path_name(path));
    CHECK_STATUS(fp8_gemm_select_path(dev, &ok, NULL), FP8_ERR_NULL_POINTER);
    CHECK_STATUS(fp8_gemm_select_path(NULL, &ok, &path), FP8_ERR_NULL_POINTER);
    reset_buffers();

    CHECK_STATUS(fp8_gemm(NULL, &ok), FP8_ERR_NULL_POINTER);
    CHECK_STATUS(fp8_gemm(dev, NULL), FP8_ERR_NULL_POINTER);
    /* NULL buffers, zero sizes */
    GEMM_EXPECT(g.w.buffer = NULL, FP8_ERR_NULL_POINTER);
    GEMM_EXPECT(g.x.buffer = NULL, FP8_ERR_NULL_POINTER);
    GEMM_EXPECT(g.y.buffer = NULL, FP8_ERR_NULL_POINTER);
    GEMM_EXPECT(g.w_scales.buffer = NULL, FP8_ERR_NULL_POINTER);
    GEMM_EXPECT((g.x.dtype = FP8_E4M3FN, g.x_scales.layout.kind = FP8_SCALE_ROW), FP8_ERR_NULL_POINTER);
    GEMM_EXPECT(g.m = 0, FP8_ERR_SHAPE);
    GEMM_EXPECT(g.n = 0, FP8_ERR_SHAPE);
    GEMM_EXPECT(g.k = 0, FP8_ERR_SHAPE);
    /* dtypes */
    GEMM_EXPECT(g.w.dtype = FP8_F16, FP8_ERR_UNSUPPORTED_DTYPE);
    GEMM_EXPECT(g.w.dtype = FP8_E8M0, FP8_ERR_UNSUPPORTED_DTYPE);
    GEMM_EXPECT(g.w.dtype = (fp8_dtype)99, FP8_ERR_UNSUPPORTED_DTYPE);
    GEMM_EXPECT(g.w.dtype = (fp8_dtype)-3, FP8_ERR_UNSUPPORTED_DTYPE);
    GEMM_EXPECT(g.x.dtype = FP8_E8M0, FP8_ERR_UNSUPPORTED_DTYPE);
    GEMM_EXPECT(g.x.dtype = FP8_I32, FP8_ERR_UNSUPPORTED_DTYPE);
    GEMM_EXPECT(g.x.dtype = FP8_DTYPE_INVALID, FP8_ERR_UNSUPPORTED_DTYPE);
    GEMM_EXPECT(g.y.dtype = FP8_E4M3FN, FP8_ERR_UNSUPPORTED_DTYPE);
    GEMM_EXPECT(g.y.dtype = FP8_U8, FP8_ERR_UNSUPPORTED_DTYPE);
    GEMM_EXPECT(g.bias.dtype = FP8_E5M2, FP8_ERR_UNSUPPORTED_DTYPE);
    GEMM_EXPECT(g.bias.dtype = (fp8_dtype)1000, FP8_ERR_UNSUPPORTED_DTYPE);
    /* strides */
    GEMM_EXPECT(g.x.row_stride = 3, FP8_ERR_STRIDE);
    GEMM_EXPECT(g.w.row_stride = 1, FP8_ERR_STRIDE);
    GEMM_EXPECT(g.y.row_stride = 2, FP8_ERR_STRIDE);
    GEMM_EXPECT((g.w.dtype = FP8_E2M1, g.w.row_stride = 5), FP8_ERR_STRIDE);
    GEMM_EXPECT((g.k = 3, g.w.dtype = FP8_E2M1), FP8_ERR_STRIDE); /* packed rows of 3 nibbles */
    GEMM_EXPECT((g.x.dtype = FP8_E2M1, g.x.row_stride = 5), FP8_ERR_STRIDE);
    /* scale layouts and scale buffers */
    GEMM_EXPECT(g.w_scales.layout.kind = (fp8_scale_kind)5, FP8_ERR_SCALE_LAYOUT);
    GEMM_EXPECT(g.w_scales.layout.kind = (fp8_scale_kind)-1, FP8_ERR_SCALE_LAYOUT);
    GEMM_EXPECT(g.w_scales.layout.dtype = FP8_F16, FP8_ERR_SCALE_LAYOUT);
    GEMM_EXPECT(g.w_scales.layout.dtype = FP8_E2M1, FP8_ERR_SCALE_LAYOUT);
    GEMM_EXPECT(g.w_scales.layout.dtype = (fp8_dtype)42, FP8_ERR_SCALE_LAYOUT);
    GEMM_EXPECT(g.w_scales.layout = ((fp8_scale_layout){FP8_SCALE_BLOCK, FP8_F32, 0, 2}), FP8_ERR_SCALE_LAYOUT);
    GEMM_EXPECT(g.x_scales.layout.kind = FP8_SCALE_TENSOR, FP8_ERR_SCALE_LAYOUT); /* f32 X takes no scales */
    GEMM_EXPECT((g.x_scales = (fp8_scales){{FP8_SCALE_TENSOR, FP8_F32, 0, 0}, bufs[B_XS], 0, 0}), FP8_ERR_SCALE_LAYOUT);
    GEMM_EXPECT((g.x.dtype = FP8_E4M3FN, g.x_scales = (fp8_scales){{FP8_SCALE_COL, FP8_F32, 0, 0}, bufs[B_XS], 0, 0}),
                FP8_ERR_SCALE_LAYOUT);
    GEMM_EXPECT(g.w_scales.offset = 24, FP8_ERR_BUFFER_TOO_SMALL); /* 3 f32 scales from 24 in 32 bytes */
    GEMM_EXPECT(g.w_scales.layout = ((fp8_scale_layout){FP8_SCALE_BLOCK, FP8_F32, 1, 1}), FP8_ERR_BUFFER_TOO_SMALL);
    GEMM_EXPECT(g.w_scales.offset = 2, FP8_ERR_STRIDE);
    GEMM_EXPECT(g.w_scales.offset = SIZE_MAX - 3, FP8_ERR_SIZE_OVERFLOW);
    GEMM_EXPECT(g.w_scales.buffer = other, FP8_ERR_WRONG_DEVICE);
    /* buffers too small, misaligned or overflowing offsets */
    GEMM_EXPECT(g.y.offset = 44, FP8_ERR_BUFFER_TOO_SMALL);
    GEMM_EXPECT(g.y.row_stride = 16, FP8_ERR_BUFFER_TOO_SMALL); /* (2-1)*16+3 f32 = 76 bytes > 64 */
    GEMM_EXPECT((g.y.row_stride = 8, g.y.offset = 24), FP8_ERR_BUFFER_TOO_SMALL);
    GEMM_EXPECT((g.m = 5, g.x.offset = 0), FP8_ERR_BUFFER_TOO_SMALL); /* 5x4 f32 = 80 > 64 */
    GEMM_EXPECT(g.w.offset = 53, FP8_ERR_BUFFER_TOO_SMALL);
    GEMM_EXPECT(g.bias.offset = 28, FP8_ERR_BUFFER_TOO_SMALL);
    GEMM_EXPECT(g.y.offset = 2, FP8_ERR_STRIDE);
    GEMM_EXPECT(g.x.offset = 1, FP8_ERR_STRIDE);
    GEMM_EXPECT(g.bias.offset = 1, FP8_ERR_STRIDE);
    GEMM_EXPECT(g.y.offset = SIZE_MAX - 7, FP8_ERR_SIZE_OVERFLOW);
    GEMM_EXPECT(g.w.offset = SIZE_MAX, FP8_ERR_SIZE_OVERFLOW);
    /* extents beyond SIZE_MAX through huge strides */
    GEMM_EXPECT(g.x.row_stride = SIZE_MAX / 2, FP8_ERR_SIZE_OVERFLOW);
    GEMM_EXPECT((g.m = 3, g.x.row_stride = SIZE_MAX / 8), FP8_ERR_SIZE_OVERFLOW);
    GEMM_EXPECT(g.w.row_stride = SIZE_MAX / 2 + 1, FP8_ERR_SIZE_OVERFLOW);
    GEMM_EXPECT((g.m = UINT32_MAX, g.x.row_stride = SIZE_MAX / 3), FP8_ERR_SIZE_OVERFLOW);
    /* output overlapping an input */
    GEMM_EXPECT(g.y.buffer = bufs[B_X], FP8_ERR_INVALID_ARGUMENT);
    GEMM_EXPECT((g.y.buffer = bufs[B_X], g.y.offset = 28), FP8_ERR_INVALID_ARGUMENT); /* X is bytes 0..32 */
    GEMM_EXPECT((g.y.buffer = bufs[B_W], g.y.offset = 8), FP8_ERR_INVALID_ARGUMENT);
    GEMM_EXPECT((g.y.buffer = bufs[B_BIAS], g.y.offset = 4), FP8_ERR_INVALID_ARGUMENT); /* bias is bytes 0..6 */
    GEMM_EXPECT((g.bias.buffer = bufs[B_Y], g.bias.offset = 20), FP8_ERR_INVALID_ARGUMENT);
    GEMM_EXPECT((g.w_scales.buffer = bufs[B_Y], g.w_scales.offset = 20), FP8_ERR_INVALID_ARGUMENT);
    GEMM_EXPECT((g.x.dtype = FP8_E4M3FN, g.x_scales = (fp8_scales){{FP8_SCALE_ROW, FP8_F32, 0, 0}, bufs[B_Y], 0, 0}),
                FP8_ERR_INVALID_ARGUMENT);
    /* buffers of another device */
    GEMM_EXPECT(g.w.buffer = other, FP8_ERR_WRONG_DEVICE);
    GEMM_EXPECT(g.x.buffer = other, FP8_ERR_WRONG_DEVICE);
    GEMM_EXPECT(g.y.buffer = other, FP8_ERR_WRONG_DEVICE);
    GEMM_EXPECT(g.bias.buffer = other, FP8_ERR_WRONG_DEVICE);
    GEMM_EXPECT((g.x.dtype = FP8_E4M3FN, g.x_scales = (fp8_scales){{FP8_SCALE_ROW, FP8_F32, 0, 0}, other, 0, 0}),
                FP8_ERR_WRONG_DEVICE);
    /* paths */
    GEMM_EXPECT(g.path = (fp8_path)99, FP8_ERR_INVALID_ARGUMENT);
    GEMM_EXPECT(g.path = (fp8_path)-1, FP8_ERR_INVALID_ARGUMENT);
    GEMM_EXPECT(g.path = FP8_PATH_COUNT_, FP8_ERR_INVALID_ARGUMENT);
    GEMM_EXPECT(g.path = FP8_PATH_VK_GEMV, FP8_ERR_UNSUPPORTED);
    GEMM_EXPECT(g.path = FP8_PATH_CL_CLBLAST, FP8_ERR_UNSUPPORTED);
    /* non-finite tensor scales */
    const float bad_ts[] = {NAN, INFINITY, -INFINITY};
    for (int k = 0; k < 3; k++) {
        GEMM_EXPECT(g.w_scales.tensor_scale = bad_ts[k], FP8_ERR_NOT_FINITE);
        GEMM_EXPECT((g.w_scales.layout.kind = FP8_SCALE_NONE, g.w_scales.tensor_scale = bad_ts[k]), FP8_ERR_NOT_FINITE);
        GEMM_EXPECT((g.x.dtype = FP8_E5M2, g.x_scales = (fp8_scales){{FP8_SCALE_ROW, FP8_F32, 0, 0}, bufs[B_XS], 0, bad_ts[k]}),
                    FP8_ERR_NOT_FINITE);
    }
    /* A buffer freed and a device closed while another keeps working. */
    fp8_buffer_free(other);
    fp8_device_close(dev2);
    CHECK_STATUS(fp8_gemm(dev, &ok), FP8_OK);
    for (int i = 0; i < B_COUNT; i++) fp8_buffer_free(bufs[i]);
    fp8_buffer_free(NULL);
    fp8_device_close(dev);
    fp8_device_close(NULL);
    fp8_context_destroy(ctx);
    fp8_context_destroy(NULL);
}

int main(void)
{
    test_quantize();
    test_dequantize();
    test_codec_and_counts();
    test_device();
    return test_finish("bad_input");
}
