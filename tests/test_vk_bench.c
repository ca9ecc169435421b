/* Benchmark reference kernels on Vulkan: the SGEMM baseline is a correct fp32 GEMM, the peak kernel runs and
 * reports its work, the copy kernel copies every byte, and bad descriptors are refused. */
#include "test_util.h"

#include "vulkan/vk_internal.h"

#include <math.h>
#include <string.h>

int main(void)
{
    fp8_context *ctx = NULL;
    fp8_context_options o = {.log = test_log};
    if (fp8_context_create(&o, &ctx) != FP8_OK) test_skip("no context");
    uint32_t vi;
    fp8_device_filter fv = {.backend = FP8_BACKEND_VULKAN};
    fp8_device *dev = NULL;
    if (fp8_context_find_device(ctx, &fv, &vi) != FP8_OK || fp8_device_open(ctx, vi, &dev) != FP8_OK) {
        fp8_context_destroy(ctx);
        test_skip("no Vulkan device");
    }
    const uint32_t m = 70, n = 130, k = 50;
    float *a = malloc(sizeof(float) * m * k), *b = malloc(sizeof(float) * n * k), *c = malloc(sizeof(float) * m * n);
    double *ref = malloc(sizeof(double) * m * n);
    test_rng r = {3};
    for (uint32_t i = 0; i < m * k; i++) a[i] = test_rng_normal(&r);
    for (uint32_t i = 0; i < n * k; i++) b[i] = test_rng_normal(&r);
    for (uint32_t i = 0; i < m; i++)
        for (uint32_t j = 0; j < n; j++) {
            double s = 0;
            for (uint32_t l = 0; l < k; l++) s += (double)a[i * k + l] * b[j * k + l];
            ref[i * n + j] = s;
        }
    fp8_buffer *ba = NULL, *bb = NULL, *bc = NULL;
    CHECK_STATUS(fp8_buffer_create(dev, sizeof(float) * m * k, &ba), FP8_OK);
    CHECK_STATUS(fp8_buffer_create(dev, sizeof(float) * n * k, &bb), FP8_OK);
    CHECK_STATUS(fp8_buffer_create(dev, sizeof(float) * m * n, &bc), FP8_OK);
    CHECK_STATUS(fp8_buffer_write(ba, 0, a, sizeof(float) * m * k), FP8_OK);
    CHECK_STATUS(fp8_buffer_write(bb, 0, b, sizeof(float) * n * k), FP8_OK);
    double flop = 0;
    fp8_bench_desc d = {.kernel = FP8_BENCH_SGEMM_F32, .m = m, .n = n, .k = k, .a = ba, .b = bb, .c = bc};
    CHECK_STATUS(fp8_device_bench_run(dev, &d, &flop), FP8_OK);
    CHECK(flop == 2.0 * m * n * k, "SGEMM flop %g", flop);
    CHECK_STATUS(fp8_buffer_read(bc, 0, c, sizeof(float) * m * n), FP8_OK);
    double err = test_rel_frobenius(c, ref, (size_t)m * n);
    CHECK(err < 1e-6, "SGEMM relative error %g", err);

    d.m = m + 1; /* A too small for the shape */
    CHECK_STATUS(fp8_device_bench_run(dev, &d, &flop), FP8_ERR_BUFFER_TOO_SMALL);

    fp8_bench_desc p = {.kernel = FP8_BENCH_MATRIX_PEAK_F16, .c = bc, .repeat = 16};
    double ns = 0;
    CHECK_STATUS(fp8_device_timer_start(dev), FP8_OK);
    CHECK_STATUS(fp8_device_bench_run(dev, &p, &flop), FP8_OK);
    CHECK_STATUS(fp8_device_timer_stop(dev, &ns), FP8_OK);
    CHECK(flop > 0 && ns > 0, "peak: %g flop in %g ns", flop, ns);
    printf("peak kernel: %.3g flop in %.1f us = %.2f GFLOP/s\n", flop, ns / 1e3, flop / ns);
    /* The other peak kernels (KHR subgroup, coopmat2 workgroup): run where the device has them, refused as
     * unsupported where not; past the last one the index is refused as invalid. */
    for (uint32_t v = 1; v <= 2; v++) {
        fp8_bench_desc pv = p;
        pv.m = v;
        flop = 0;
        CHECK_STATUS(fp8_device_timer_start(dev), FP8_OK);
        const fp8_status st = fp8_device_bench_run(dev, &pv, &flop);
        double vns = 0;
        CHECK_STATUS(fp8_device_timer_stop(dev, &vns), FP8_OK);
        CHECK(st == FP8_OK || st == FP8_ERR_UNSUPPORTED, "peak kernel %u: %s", v, fp8_status_name(st));
        if (st == FP8_OK) {
            CHECK(flop > 0 && vns > 0, "peak kernel %u: %g flop in %g ns", v, flop, vns);
            printf("peak kernel %u: %.2f GFLOP/s\n", v, flop / vns);
        } else {
            printf("peak kernel %u: not on this device or build\n", v);
        }
    }
    p.m = 3;
    CHECK_STATUS(fp8_device_bench_run(dev, &p, &flop), FP8_ERR_INVALID_ARGUMENT);
    p.m = 0;

    /* The copy kernel: a size that is not a whole number of its 4 KiB rounds, every byte checked. */
    const size_t cn = 16 * 1000 + 16 * 1024 * 3;
    uint8_t *src = malloc(cn), *dst = malloc(cn);
    for (size_t i = 0; i < cn; i++) src[i] = (uint8_t)(i * 7 + (i >> 8));
    fp8_buffer *cs = NULL, *cd = NULL, *small = NULL;
    CHECK_STATUS(fp8_buffer_create(dev, cn, &cs), FP8_OK);
    CHECK_STATUS(fp8_buffer_create(dev, cn + 16, &cd), FP8_OK);
    CHECK_STATUS(fp8_buffer_write(cs, 0, src, cn), FP8_OK);
    fp8_bench_desc cp = {.kernel = FP8_BENCH_COPY, .a = cs, .c = cd};
    CHECK_STATUS(fp8_device_bench_run(dev, &cp, &flop), FP8_OK);
    CHECK(flop == 2.0 * cn, "copy reports %g bytes", flop);
    CHECK_STATUS(fp8_buffer_read(cd, 0, dst, cn), FP8_OK);
    CHECK(memcmp(src, dst, cn) == 0, "the copy kernel's output differs from its input");
    CHECK_STATUS(fp8_buffer_create(dev, cn - 16, &small), FP8_OK);
    cp.c = small; /* destination too small */
    CHECK_STATUS(fp8_device_bench_run(dev, &cp, &flop), FP8_ERR_BUFFER_TOO_SMALL);
    fp8_buffer *odd = NULL;
    CHECK_STATUS(fp8_buffer_create(dev, 20, &odd), FP8_OK);
    cp.a = odd; /* not whole 16-byte words */
    cp.c = cd;
    CHECK_STATUS(fp8_device_bench_run(dev, &cp, &flop), FP8_ERR_SHAPE);
    fp8_buffer_free(odd);
    fp8_buffer_free(small);
    fp8_buffer_free(cs);
    fp8_buffer_free(cd);
    free(src);
    free(dst);

    fp8_buffer_free(ba);
    fp8_buffer_free(bb);
    fp8_buffer_free(bc);
    fp8_device_close(dev);
    CHECK(fp8i_vk_validation_errors(ctx) == 0, "%u validation errors", fp8i_vk_validation_errors(ctx));
    fp8_context_destroy(ctx);
    free(a); free(b); free(c); free(ref);
    return test_finish("vk_bench");
}
