/* Reference kernels for benchmarks: the fp16 matrix peak and an fp32 SGEMM baseline. */
#include "vk_internal.h"

fp8_status fp8i_vk_bench_run(fp8_device *dev, const fp8_bench_desc *desc, double *flop)
{
    (void)desc; (void)flop;
    return FP8I_FAIL(dev->ctx, FP8_ERR_UNSUPPORTED, "vulkan: bench kernels not implemented yet");
}
