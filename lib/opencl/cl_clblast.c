/* The CLBlast path: dequantize bands of the weight into bounded scratch, then CLBlast SGEMM per band. */
#include "cl_internal.h"

#ifdef FP8_HAVE_CLBLAST
bool fp8i_cl_clblast_supports(const fp8_device *dev, const fp8i_gemm_args *args)
{
    (void)dev; (void)args;
    return false; /* not implemented yet */
}
fp8_status fp8i_cl_clblast_gemm(fp8_device *dev, const fp8i_gemm_args *args)
{
    (void)args;
    return FP8I_FAIL(dev->ctx, FP8_ERR_UNSUPPORTED, "opencl: CLBlast path not implemented yet");
}
#endif
