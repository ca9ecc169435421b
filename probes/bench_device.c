#include "bench_device.h"

#include <stdlib.h>
#include <string.h>

bool bench_device_matches(const char *spec, uint32_t index, const fp8_device_info *info)
{
    char *end;
    const unsigned long idx = strtoul(spec, &end, 10);
    if (spec[0] >= '0' && spec[0] <= '9' && *end == '\0') return idx == index;
    const char *backend = fp8_backend_name(info->backend);
    const size_t blen = strlen(backend);
    if (strncmp(spec, backend, blen) == 0 && (spec[blen] == '\0' || spec[blen] == ':'))
        return spec[blen] == '\0' || strstr(info->name, spec + blen + 1) != NULL;
    return strstr(info->name, spec) != NULL;
}
