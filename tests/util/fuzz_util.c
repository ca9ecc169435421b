#include "fuzz_util.h"

#include <string.h>

uint32_t fuzz_pick(test_rng *r, uint32_t n) { return (uint32_t)(test_rng_next(r) % n); }

size_t fuzz_offset(test_rng *r)
{
    const uint32_t c = fuzz_pick(r, 24);
    if (c == 0) return (size_t)-1 - fuzz_pick(r, 64);
    if (c == 1) return 1 + fuzz_pick(r, 7);
    return c < 6 ? 16 * fuzz_pick(r, 8) : 0;
}

size_t fuzz_stride(test_rng *r)
{
    const uint32_t c = fuzz_pick(r, 20);
    if (c == 0) return (size_t)-1 - fuzz_pick(r, 3);
    if (c == 1) return 1 + fuzz_pick(r, 200);
    return c == 2 ? 0x100000000ull : 0;
}

bool fuzz_documented(fp8_status st, bool data_errors)
{
    switch (st) {
    case FP8_ERR_INVALID_ARGUMENT: case FP8_ERR_NULL_POINTER: case FP8_ERR_UNSUPPORTED_DTYPE: case FP8_ERR_SHAPE:
    case FP8_ERR_STRIDE: case FP8_ERR_SCALE_LAYOUT: case FP8_ERR_SIZE_OVERFLOW: case FP8_ERR_BUFFER_TOO_SMALL:
    case FP8_ERR_UNSUPPORTED: case FP8_ERR_NOT_FINITE: case FP8_ERR_TOO_LARGE: case FP8_ERR_WRONG_DEVICE:
        return true;
    case FP8_OK: case FP8_ERR_EXPERT_ID:
        return data_errors;
    default:
        return false;
    }
}

static void count_validation(void *user, fp8_log_level level, const char *message)
{
    (void)level;
    if (strstr(message, "validation")) ++*(int *)user;
}

int fuzz_main(const char *name, fuzz_device_fn fn, int cpu_iters, int gpu_iters)
{
    int validation_messages = 0;
    fp8_context *ctx = NULL;
    fp8_context_options o = {.log = count_validation, .log_user = &validation_messages};
    setenv("FP8_VK_VALIDATION", "1", 0); /* where the layer is installed: its messages fail the test */
    if (fp8_context_create(&o, &ctx) != FP8_OK) test_skip("no context");
    const char *env = getenv("FP8_TEST_FUZZ_ITERS");
    const fp8_backend backends[] = {FP8_BACKEND_CPU, FP8_BACKEND_VULKAN, FP8_BACKEND_OPENCL};
    for (size_t i = 0; i < sizeof backends / sizeof backends[0]; i++) {
        fp8_device_filter f = {.backend = backends[i]};
        uint32_t index;
        fp8_device_info info;
        fp8_device *dev = NULL;
        if (fp8_context_find_device(ctx, &f, &index) != FP8_OK) {
            printf("SKIP: no %s device\n", fp8_backend_name(backends[i]));
            continue;
        }
        CHECK_STATUS(fp8_context_device_info(ctx, index, &info), FP8_OK);
        if (fp8_device_open(ctx, index, &dev) != FP8_OK) {
            printf("SKIP: %s did not open\n", info.name);
            continue;
        }
        fn(dev, &info, env ? atoi(env) : backends[i] == FP8_BACKEND_CPU ? cpu_iters : gpu_iters);
        fp8_device_close(dev);
    }
    CHECK(validation_messages == 0, "%d Vulkan validation messages", validation_messages);
    fp8_context_destroy(ctx);
    return test_finish(name);
}
