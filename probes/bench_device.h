/* Which device a benchmark's --device names. */
#ifndef FP8_PROBES_BENCH_DEVICE_H
#define FP8_PROBES_BENCH_DEVICE_H

#include <fp8.h>

#include <stdbool.h>
#include <stdint.h>

/* Whether device `index` of the context, described by `info`, is one that SPEC names: its index ("2"), a
 * backend ("opencl": any of its devices), a backend and a part of the name ("opencl:NVIDIA"), or a part of
 * the name alone ("H200", which may match a device of each backend). */
bool bench_device_matches(const char *spec, uint32_t index, const fp8_device_info *info);

#endif
