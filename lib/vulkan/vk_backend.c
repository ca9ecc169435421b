/* The Vulkan backend's vtable: each slot is implemented in the vk_*.c file named beside it. */
#include "vk_internal.h"

const fp8i_backend fp8i_backend_vulkan = {
    .id = FP8_BACKEND_VULKAN,
    .env_disable = "FP8_DISABLE_VULKAN",
    .enumerate = fp8i_vk_enumerate,         /* vk_instance.c */
    .shutdown = fp8i_vk_shutdown,
    .device_open = fp8i_vk_device_open,     /* vk_device.c */
    .device_close = fp8i_vk_device_close,
    .synchronize = fp8i_vk_synchronize,
    .buffer_create = fp8i_vk_buffer_create, /* vk_memory.c */
    .buffer_free = fp8i_vk_buffer_free,
    .buffer_write = fp8i_vk_buffer_write,
    .buffer_read = fp8i_vk_buffer_read,
    .buffer_copy = fp8i_vk_buffer_copy,
    .gemm = fp8i_vk_gemm,                   /* vk_gemm.c */
    .supports_path = fp8i_vk_supports_path,
    .timer_start = fp8i_vk_timer_start,     /* vk_device.c */
    .timer_stop = fp8i_vk_timer_stop,
    .bench_run = fp8i_vk_bench_run,         /* vk_bench.c */
    .moe_route = fp8i_vk_moe_route,         /* vk_moe.c */
    .moe_group = fp8i_vk_moe_group,
    .moe_route_group = fp8i_vk_moe_route_group,
    .concurrent = fp8i_vk_concurrent,
    .moe_quantize_rows = fp8i_vk_moe_quantize_rows,
    .moe_grouped_gemm = fp8i_vk_moe_grouped_gemm,
    .moe_combine = fp8i_vk_moe_combine,
    .moe_row_align = fp8i_vk_moe_row_align,
    .moe_act_bf16 = fp8i_vk_moe_act_bf16,
};
