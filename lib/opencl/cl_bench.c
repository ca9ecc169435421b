/* Reference kernels for benchmarks: SGEMM (CLBlast or the fused fp32 kernels) and an FMA peak loop. */
#include "cl_internal.h"

fp8_status fp8i_cl_bench_run(fp8_device *dev, const fp8_bench_desc *desc, double *flop)
{
    (void)desc; (void)flop;
    return FP8I_FAIL(dev->ctx, FP8_ERR_UNSUPPORTED, "opencl: benchmarks not implemented yet");
}
