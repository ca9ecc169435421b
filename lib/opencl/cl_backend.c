/* The OpenCL backend's vtable. */
#include "cl_internal.h"

const fp8i_backend fp8i_backend_opencl = {
    .id = FP8_BACKEND_OPENCL,
    .env_disable = "FP8_DISABLE_OPENCL",
    .enumerate = fp8i_cl_enumerate,
    .shutdown = fp8i_cl_shutdown,
    .device_open = fp8i_cl_device_open,
    .device_close = fp8i_cl_device_close,
    .synchronize = fp8i_cl_synchronize,
    .buffer_create = fp8i_cl_buffer_create,
    .buffer_free = fp8i_cl_buffer_free,
    .buffer_write = fp8i_cl_buffer_write,
    .buffer_read = fp8i_cl_buffer_read,
    .buffer_copy = fp8i_cl_buffer_copy,
    .gemm = fp8i_cl_gemm,
    .supports_path = fp8i_cl_supports_path,
    .refine_path = fp8i_cl_refine_path,
    .timer_start = fp8i_cl_timer_start,
    .timer_stop = fp8i_cl_timer_stop,
    .bench_run = fp8i_cl_bench_run,
    .moe_route = fp8i_cl_moe_route,
    .moe_group = fp8i_cl_moe_group,
    .moe_quantize_rows = fp8i_cl_moe_quantize_rows,
    .moe_grouped_gemm = fp8i_cl_moe_grouped_gemm,
    .moe_combine = fp8i_cl_moe_combine,
    .moe_row_align = fp8i_cl_moe_row_align,
};
