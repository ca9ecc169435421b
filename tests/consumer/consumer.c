/* A program outside the project, built only from the installed header and pkg-config: proves the packaging. */
#include <fp8.h>

#include <math.h>
#include <stdio.h>

#define CHECK_OK(expr)                                                                                  \
    do {                                                                                                \
        fp8_status st_ = (expr);                                                                        \
        if (st_ != FP8_OK) {                                                                            \
            fprintf(stderr, "consumer: %s: %s\n", #expr, fp8_status_name(st_));                         \
            return 1;                                                                                   \
        }                                                                                               \
    } while (0)

int main(void)
{
    if (fp8_version_number() != FP8_VERSION_NUMBER) {
        fprintf(stderr, "consumer: header %d, library %u\n", FP8_VERSION_NUMBER, fp8_version_number());
        return 1;
    }
    /* Quantize W[2,4] to E4M3 with per-row scales on the host, then Y[1,2] = X[1,4] * W^T on the CPU. */
    const float w[8] = {1, 2, 4, 8, 0.5f, -1, 0, 2}, x[4] = {1, 1, 1, 1};
    uint8_t wq[8];
    float ws[2];
    fp8_quantize_desc q = {
        .rows = 2, .cols = 4, .src_dtype = FP8_F32, .src = w, .dst_dtype = FP8_E4M3FN, .dst = wq,
        .dst_bytes = sizeof wq, .scale_layout = {FP8_SCALE_ROW, FP8_F32, 0, 0}, .scale = ws, .scale_bytes = sizeof ws,
    };
    CHECK_OK(fp8_quantize(&q));

    fp8_context *ctx;
    CHECK_OK(fp8_context_create(NULL, &ctx));
    uint32_t idx;
    fp8_device_filter cpu = {.backend = FP8_BACKEND_CPU};
    CHECK_OK(fp8_context_find_device(ctx, &cpu, &idx));
    fp8_device *dev;
    CHECK_OK(fp8_device_open(ctx, idx, &dev));
    fp8_buffer *bw, *bs, *bx, *by;
    CHECK_OK(fp8_buffer_create(dev, sizeof wq, &bw));
    CHECK_OK(fp8_buffer_create(dev, sizeof ws, &bs));
    CHECK_OK(fp8_buffer_create(dev, sizeof x, &bx));
    CHECK_OK(fp8_buffer_create(dev, 2 * sizeof(float), &by));
    CHECK_OK(fp8_buffer_write(bw, 0, wq, sizeof wq));
    CHECK_OK(fp8_buffer_write(bs, 0, ws, sizeof ws));
    CHECK_OK(fp8_buffer_write(bx, 0, x, sizeof x));
    fp8_gemm_desc g = {
        .m = 1, .n = 2, .k = 4,
        .w = {bw, 0, FP8_E4M3FN, 0}, .w_scales = {{FP8_SCALE_ROW, FP8_F32, 0, 0}, bs, 0, 0},
        .x = {bx, 0, FP8_F32, 0}, .y = {by, 0, FP8_F32, 0},
    };
    CHECK_OK(fp8_gemm(dev, &g));
    float y[2];
    CHECK_OK(fp8_buffer_read(by, 0, y, sizeof y));
    fp8_buffer_free(bw);
    fp8_buffer_free(bs);
    fp8_buffer_free(bx);
    fp8_buffer_free(by);
    fp8_device_close(dev);
    fp8_context_destroy(ctx);
    if (fabsf(y[0] - 15.0f) > 1e-5f || fabsf(y[1] - 1.5f) > 1e-5f) {
        fprintf(stderr, "consumer: y = %g %g, want 15 1.5\n", y[0], y[1]);
        return 1;
    }
    printf("consumer: libfp8 %s works (y = %g %g)\n", fp8_version_string(), y[0], y[1]);
    return 0;
}
