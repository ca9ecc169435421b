/* Test helpers shared by every test program. */
#include "test_util.h"

#include <math.h>
#include <stdarg.h>
#include <string.h>

int test_failures = 0;

void test_skip(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("SKIP: ", stdout);
    vprintf(fmt, ap);
    fputc('\n', stdout);
    va_end(ap);
    exit(TEST_SKIP_CODE);
}

int test_finish(const char *name)
{
    if (test_failures) {
        printf("%s: %d check(s) FAILED\n", name, test_failures);
        return 1;
    }
    printf("%s: all checks passed\n", name);
    return 0;
}

const char *test_data_path(const char *relative)
{
    static char buf[4096];
    const char *dir = getenv("FP8_TESTDATA");
    if (!dir) dir = "../shared/testdata";
    snprintf(buf, sizeof buf, "%s/%s", dir, relative);
    return buf;
}

uint64_t test_rng_next(test_rng *r)
{
    r->s ^= r->s >> 12;
    r->s ^= r->s << 25;
    r->s ^= r->s >> 27;
    return r->s * 0x2545F4914F6CDD1DULL;
}

float test_rng_uniform(test_rng *r, float lo, float hi)
{
    return lo + (hi - lo) * (float)((test_rng_next(r) >> 40) * (1.0 / 16777216.0));
}

float test_rng_normal(test_rng *r)
{
    double u1 = ((test_rng_next(r) >> 11) + 1.0) * (1.0 / 9007199254740993.0);
    double u2 = (test_rng_next(r) >> 11) * (1.0 / 9007199254740992.0);
    return (float)(sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2));
}

void test_log(void *user, fp8_log_level level, const char *message)
{
    (void)user;
    if (level >= FP8_LOG_WARN) fprintf(stderr, "[libfp8] %s\n", message);
}

double test_rel_frobenius(const float *a, const double *ref, size_t n)
{
    double num = 0, den = 0;
    for (size_t i = 0; i < n; i++) {
        double d = (double)a[i] - ref[i];
        num += d * d;
        den += ref[i] * ref[i];
    }
    if (den == 0) return sqrt(num);
    return sqrt(num / den);
}

static int cmp_double(const void *a, const void *b)
{
    const double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

double test_time_median(fp8_device *dev, test_run_fn fn, void *user, int reps)
{
    for (int i = 0; i < 2; i++)
        if (fn(user) != FP8_OK) return -1;
    if (fp8_device_synchronize(dev) != FP8_OK) return -1;
    double t[64];
    if (reps > 64) reps = 64;
    if (reps < 1) return -1;
    for (int i = 0; i < reps; i++) {
        if (fp8_device_timer_start(dev) != FP8_OK) return -1;
        const fp8_status st = fn(user);
        if (fp8_device_timer_stop(dev, &t[i]) != FP8_OK || st != FP8_OK) return -1;
    }
    if (fp8_device_synchronize(dev) != FP8_OK) return -1;
    qsort(t, (size_t)reps, sizeof t[0], cmp_double);
    return t[reps / 2];
}

uint32_t test_find_opencl_device(fp8_context *ctx)
{
    const char *filter = getenv("FP8_TEST_CL_DEVICE");
    const fp8_device_filter f = {.backend = FP8_BACKEND_OPENCL, .name_contains = filter};
    uint32_t idx = 0;
    if (fp8_context_find_device(ctx, &f, &idx) != FP8_OK) {
        fp8_context_destroy(ctx);
        test_skip("no OpenCL device%s%s", filter ? " matching " : "", filter ? filter : "");
    }
    return idx;
}
