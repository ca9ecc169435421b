/* Test helpers: checks that report file:line, skip with a reason, deterministic random numbers. */
#ifndef FP8_TEST_UTIL_H
#define FP8_TEST_UTIL_H

#include <fp8.h>

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

/* meson's convention: exit code 77 means skipped. */
#define TEST_SKIP_CODE 77

extern int test_failures;

#define CHECK(cond, ...)                                                                           \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            test_failures++;                                                                       \
            fprintf(stderr, "%s:%d: CHECK(%s) failed: ", __FILE__, __LINE__, #cond);               \
            fprintf(stderr, __VA_ARGS__);                                                          \
            fputc('\n', stderr);                                                                   \
        }                                                                                          \
    } while (0)

#define CHECK_STATUS(expr, expected)                                                               \
    do {                                                                                           \
        fp8_status st_ = (expr);                                                                   \
        CHECK(st_ == (expected), "%s returned %s, expected %s", #expr, fp8_status_name(st_),       \
              fp8_status_name(expected));                                                          \
    } while (0)

/* Print a reason and exit with the skip code. */
void test_skip(const char *fmt, ...);
/* Print a summary and return the process exit code. */
int test_finish(const char *name);

/* Path of a file under the shared testdata directory ($FP8_TESTDATA). */
const char *test_data_path(const char *relative);

/* xorshift64*: deterministic across platforms. */
typedef struct test_rng { uint64_t s; } test_rng;
uint64_t test_rng_next(test_rng *r);
float test_rng_uniform(test_rng *r, float lo, float hi);
float test_rng_normal(test_rng *r);

/* Log callback that prints library messages at WARN and above to stderr. */
void test_log(void *user, fp8_log_level level, const char *message);

/* Relative Frobenius error ||a - b|| / ||b|| of float data against a double reference. */
double test_rel_frobenius(const float *a, const double *ref, size_t n);

/* Index of the OpenCL device the test runs on in ctx: the first whose name contains $FP8_TEST_CL_DEVICE (any
 * OpenCL device when unset). Where there is none, destroys ctx and skips the test, saying why. */
uint32_t test_find_opencl_device(fp8_context *ctx);

/* Median device time in ns of `reps` (at most 64) timed runs of `fn` on `dev`, after two warm-up runs;
 * negative on any failure. The timed region ends with a synchronize, so the result is complete. */
typedef fp8_status (*test_run_fn)(void *user);
double test_time_median(fp8_device *dev, test_run_fn fn, void *user, int reps);

#endif
