/* Status codes, path names, backend names: the tables behind the *_string/_name helpers. */
#include "internal.h"

#include <string.h>

const char *fp8_status_string(fp8_status status)
{
    switch (status) {
#define FP8_STATUS_TEXT_(name, value, text) case name: return text;
        FP8_STATUS_LIST(FP8_STATUS_TEXT_)
#undef FP8_STATUS_TEXT_
    }
    return "unknown status";
}

const char *fp8_status_name(fp8_status status)
{
    switch (status) {
#define FP8_STATUS_NAME_(name, value, text) case name: return #name;
        FP8_STATUS_LIST(FP8_STATUS_NAME_)
#undef FP8_STATUS_NAME_
    }
    return "FP8_UNKNOWN_STATUS";
}

const char *fp8_backend_name(fp8_backend backend)
{
    switch (backend) {
    case FP8_BACKEND_CPU: return "cpu";
    case FP8_BACKEND_VULKAN: return "vulkan";
    case FP8_BACKEND_OPENCL: return "opencl";
    }
    return "unknown";
}

static const char *const path_names[FP8_PATH_COUNT_] = {
    [FP8_PATH_AUTO] = "auto",
    [FP8_PATH_CPU_REFERENCE] = "cpu_reference",
    [FP8_PATH_VK_GEMV] = "vk_gemv",
    [FP8_PATH_VK_GEMM_TILED] = "vk_gemm_tiled",
    [FP8_PATH_VK_GEMM_NV_COOPMAT] = "vk_gemm_nv_coopmat",
    [FP8_PATH_VK_GEMM_KHR_COOPMAT] = "vk_gemm_khr_coopmat",
    [FP8_PATH_VK_GEMM_FLOAT8] = "vk_gemm_float8",
    [FP8_PATH_CL_GEMV] = "cl_gemv",
    [FP8_PATH_CL_GEMM_TILED] = "cl_gemm_tiled",
    [FP8_PATH_CL_CLBLAST] = "cl_clblast",
    [FP8_PATH_VK_GEMM_NV_COOPMAT2] = "vk_gemm_nv_coopmat2",
};

const char *fp8_path_name(fp8_path path)
{
    if ((unsigned)path >= FP8_PATH_COUNT_) return "unknown";
    return path_names[path];
}

fp8_path fp8_path_from_name(const char *name)
{
    if (!name) return FP8_PATH_AUTO;
    for (unsigned i = 0; i < FP8_PATH_COUNT_; i++)
        if (strcmp(name, path_names[i]) == 0) return (fp8_path)i;
    return FP8_PATH_AUTO;
}
