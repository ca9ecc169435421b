/* The CPU backend: host-memory buffers, synchronous execution, and the device record of this machine. */
#include "../backend/backend.h"
#include "cpu.h"

#include <stdio.h>
#include <string.h>
#include <unistd.h>

static void read_cpu_name(char *name, size_t size)
{
    fp8i_strlcpy(name, "CPU", size);
    FILE *f = fopen("/proc/cpuinfo", "r");
    if (!f) return;
    char line[512];
    while (fgets(line, sizeof line, f)) {
        if (strncmp(line, "model name", 10) == 0) {
            const char *colon = strchr(line, ':');
            if (colon) {
                colon++;
                while (*colon == ' ') colon++;
                fp8i_strlcpy(name, colon, size);
                name[strcspn(name, "\n")] = '\0';
            }
            break;
        }
    }
    fclose(f);
}

static fp8_status cpu_enumerate(fp8_context *ctx)
{
    fp8i_device_entry *e = fp8i_add_device(ctx, &fp8i_backend_cpu, 0);
    if (!e) return FP8_OK;
    fp8_device_info *d = &e->info;
    read_cpu_name(d->name, sizeof d->name);
    fp8i_strlcpy(d->vendor, "host", sizeof d->vendor);
    fp8i_strlcpy(d->driver_name, "libfp8 reference", sizeof d->driver_name);
    fp8i_strlcpy(d->driver_version, fp8_version_string(), sizeof d->driver_version);
    fp8i_strlcpy(d->api_version, "C11", sizeof d->api_version);
    d->type = FP8_DEVICE_CPU;
    long pages = sysconf(_SC_PHYS_PAGES), page = sysconf(_SC_PAGESIZE);
    if (pages > 0 && page > 0) d->memory_bytes = (uint64_t)pages * (uint64_t)page;
    d->max_allocation_bytes = d->memory_bytes;
    d->max_buffer_range = d->memory_bytes;
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    d->compute_units = n > 0 ? (uint32_t)n : 1;
    d->caps.fp16 = d->caps.bf16 = d->caps.int8 = d->caps.fp64 = 1;
    d->caps.storage8 = d->caps.storage16 = 1;
    return FP8_OK;
}

static fp8_status cpu_device_open(fp8_device *dev) { (void)dev; return FP8_OK; }
static void cpu_device_close(fp8_device *dev) { (void)dev; }
static fp8_status cpu_synchronize(fp8_device *dev) { (void)dev; return FP8_OK; }

static fp8_status cpu_buffer_create(fp8_buffer *buf)
{
    buf->impl = fp8i_calloc(buf->dev->ctx, 1, buf->size);
    return buf->impl ? FP8_OK : FP8_ERR_OUT_OF_HOST_MEMORY;
}
static void cpu_buffer_free(fp8_buffer *buf) { fp8i_free(buf->dev->ctx, buf->impl); }
static fp8_status cpu_buffer_write(fp8_buffer *buf, size_t offset, const void *src, size_t size)
{
    memcpy((uint8_t *)buf->impl + offset, src, size);
    return FP8_OK;
}
static fp8_status cpu_buffer_read(const fp8_buffer *buf, size_t offset, void *dst, size_t size)
{
    memcpy(dst, (const uint8_t *)buf->impl + offset, size);
    return FP8_OK;
}
static fp8_status cpu_buffer_copy(fp8_buffer *dst, size_t dst_offset, const fp8_buffer *src, size_t src_offset, size_t size)
{
    memmove((uint8_t *)dst->impl + dst_offset, (const uint8_t *)src->impl + src_offset, size);
    return FP8_OK;
}

static bool cpu_supports_path(const fp8_device *dev, fp8_path path, const fp8i_gemm_args *args)
{
    (void)dev; (void)args;
    return path == FP8_PATH_CPU_REFERENCE;
}

const fp8i_backend fp8i_backend_cpu = {
    .id = FP8_BACKEND_CPU,
    .env_disable = NULL,
    .enumerate = cpu_enumerate,
    .device_open = cpu_device_open,
    .device_close = cpu_device_close,
    .synchronize = cpu_synchronize,
    .buffer_create = cpu_buffer_create,
    .buffer_free = cpu_buffer_free,
    .buffer_write = cpu_buffer_write,
    .buffer_read = cpu_buffer_read,
    .buffer_copy = cpu_buffer_copy,
    .gemm = fp8i_cpu_gemm,
    .supports_path = cpu_supports_path,
    .moe_route = fp8i_cpu_moe_route,
    .moe_group = fp8i_cpu_moe_group,
    .moe_quantize_rows = fp8i_cpu_moe_quantize_rows,
    .moe_grouped_gemm = fp8i_cpu_moe_grouped_gemm,
    .moe_combine = fp8i_cpu_moe_combine,
};
