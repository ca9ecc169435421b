/* fp8probe: what each device can do with FP8, and which paths libfp8 takes there. */
#include <fp8.h>

#include <stdio.h>
#include <string.h>

int main(int argc, char **argv)
{
    (void)argc; (void)argv;
    fp8_context *ctx;
    fp8_status st = fp8_context_create(NULL, &ctx);
    if (st != FP8_OK) {
        fprintf(stderr, "fp8probe: %s\n", fp8_status_string(st));
        return 2;
    }
    printf("libfp8 %s\n", fp8_version_string());
    for (uint32_t i = 0; i < fp8_context_device_count(ctx); i++) {
        fp8_device_info info;
        fp8_device_verdict v;
        fp8_context_device_info(ctx, i, &info);
        fp8_context_device_verdict(ctx, i, &v);
        printf("[%u] %s: %s\n  gemv: %s\n  gemm: %s\n", i, fp8_backend_name(info.backend), info.name,
               fp8_path_name(v.gemv_path), fp8_path_name(v.gemm_path));
    }
    fp8_context_destroy(ctx);
    return 0;
}
