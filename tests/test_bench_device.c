/* The benchmarks' --device: an index, a backend, a backend and a part of the name, or a part of the name. */
#include "test_util.h"

#include "../probes/bench_device.h"

#include <string.h>

static fp8_device_info device(fp8_backend backend, const char *name)
{
    fp8_device_info d;
    memset(&d, 0, sizeof d);
    d.backend = backend;
    snprintf(d.name, sizeof d.name, "%s", name);
    return d;
}

int main(void)
{
    const fp8_device_info vk = device(FP8_BACKEND_VULKAN, "NVIDIA H200"), cl = device(FP8_BACKEND_OPENCL, "NVIDIA H200");
    const fp8_device_info pocl = device(FP8_BACKEND_OPENCL, "pthread-skylake-avx512");
    CHECK(bench_device_matches("2", 2, &cl) && !bench_device_matches("2", 1, &cl), "an index names one device");
    CHECK(bench_device_matches("opencl", 2, &cl) && bench_device_matches("opencl", 1, &pocl), "a backend names its devices");
    CHECK(!bench_device_matches("opencl", 0, &vk), "a backend names no other backend's device");
    CHECK(bench_device_matches("opencl:NVIDIA", 2, &cl), "backend and name part");
    CHECK(!bench_device_matches("opencl:NVIDIA", 0, &vk), "the same name on another backend is not named");
    CHECK(!bench_device_matches("opencl:NVIDIA", 1, &pocl), "another name on the backend is not named");
    CHECK(bench_device_matches("H200", 0, &vk) && bench_device_matches("H200", 2, &cl), "a name part alone names both");
    CHECK(!bench_device_matches("vulkanx", 0, &vk), "a backend's name must end at the colon");
    CHECK(!bench_device_matches("AMD", 0, &vk), "a name part that is not there");
    return test_finish("bench_device");
}
