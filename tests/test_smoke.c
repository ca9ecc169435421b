/* Smoke test: the library links, reports its version, and the CPU device exists. */
#include "test_util.h"

#include <string.h>

int main(void)
{
    CHECK(fp8_version_number() == FP8_VERSION_NUMBER, "linked %u, compiled %u", fp8_version_number(), FP8_VERSION_NUMBER);
    CHECK(strcmp(fp8_status_string((fp8_status)12345), "unknown status") == 0, "unknown status text");
    fp8_context *ctx = NULL;
    CHECK_STATUS(fp8_context_create(NULL, &ctx), FP8_OK);
    CHECK(fp8_context_device_count(ctx) >= 1, "no device");
    uint32_t idx;
    fp8_device_filter f = {.backend = FP8_BACKEND_CPU};
    CHECK_STATUS(fp8_context_find_device(ctx, &f, &idx), FP8_OK);
    fp8_context_destroy(ctx);
    return test_finish("smoke");
}
