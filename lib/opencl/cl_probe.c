/* Capability record of an OpenCL device, from real queries. */
#include "cl_internal.h"

#include <string.h>

static void get_string(cl_device_id d, cl_device_info what, char *out, size_t size)
{
    out[0] = '\0';
    if (clGetDeviceInfo(d, what, size, out, NULL) != CL_SUCCESS) out[0] = '\0';
    out[size - 1] = '\0';
}

void fp8i_cl_probe_device(const fp8_context *ctx, cl_platform_id platform, cl_device_id d, fp8_device_info *info)
{
    (void)ctx; (void)platform;
    get_string(d, CL_DEVICE_NAME, info->name, sizeof info->name);
    get_string(d, CL_DEVICE_VENDOR, info->vendor, sizeof info->vendor);
    get_string(d, CL_DRIVER_VERSION, info->driver_version, sizeof info->driver_version);
    get_string(d, CL_DEVICE_VERSION, info->api_version, sizeof info->api_version);
    get_string(d, CL_DEVICE_OPENCL_C_VERSION, info->language_version, sizeof info->language_version);
    cl_uint vendor = 0, cus = 0;
    cl_ulong mem = 0, alloc = 0, local = 0;
    size_t wg = 0;
    cl_device_type type = 0;
    clGetDeviceInfo(d, CL_DEVICE_VENDOR_ID, sizeof vendor, &vendor, NULL);
    clGetDeviceInfo(d, CL_DEVICE_MAX_COMPUTE_UNITS, sizeof cus, &cus, NULL);
    clGetDeviceInfo(d, CL_DEVICE_GLOBAL_MEM_SIZE, sizeof mem, &mem, NULL);
    clGetDeviceInfo(d, CL_DEVICE_MAX_MEM_ALLOC_SIZE, sizeof alloc, &alloc, NULL);
    clGetDeviceInfo(d, CL_DEVICE_LOCAL_MEM_SIZE, sizeof local, &local, NULL);
    clGetDeviceInfo(d, CL_DEVICE_MAX_WORK_GROUP_SIZE, sizeof wg, &wg, NULL);
    clGetDeviceInfo(d, CL_DEVICE_TYPE, sizeof type, &type, NULL);
    info->vendor_id = vendor;
    info->compute_units = cus;
    info->memory_bytes = mem;
    info->max_allocation_bytes = alloc;
    info->max_buffer_range = alloc;
    info->shared_memory_bytes = (uint32_t)local;
    info->max_workgroup_size = (uint32_t)wg;
    info->type = (type & CL_DEVICE_TYPE_GPU) ? FP8_DEVICE_DISCRETE_GPU
                 : (type & CL_DEVICE_TYPE_CPU) ? FP8_DEVICE_CPU : FP8_DEVICE_OTHER;
}
