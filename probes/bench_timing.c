/* bench_timing: see bench_timing.h for what a measurement runs and why. */
#include "bench_timing.h"

#include <math.h>
#include <stdlib.h>
#include <time.h>

fp8_status bench_copy_kernel(fp8_device *dev, fp8_buffer *src, fp8_buffer *dst)
{
    const fp8_bench_desc d = {.kernel = FP8_BENCH_COPY, .a = src, .c = dst};
    double bytes;
    return fp8_device_bench_run(dev, &d, &bytes);
}

/* Sixteen copies of the guard's buffers, about 3 ms on the H100: enough to hold the clock the 200 ms raised
 * across the host's gap before a region, short enough to run before every one. False without the guard. */
static bool clock_burst(const bench_timer *t)
{
    if (!t->clock_bufs[0]) return false;
    for (int i = 0; i < 16; i++)
        if (bench_copy_kernel(t->dev, t->clock_bufs[0], t->clock_bufs[1]) != FP8_OK) return false;
    return true;
}

/* About 200 ms of bursts: on the H100 a light measurement right after the host's set-up (DeepSeek-V3's one-token
 * layer, run 47) sat at 345 MHz for whole regions, while a streaming copy brings the clock up within 100 ms. */
static void raise_clocks(const bench_timer *t)
{
    if (!t->clock_bufs[0]) return;
    double ns = 0;
    for (double spent = 0; spent < 200e6; spent += ns) {
        if (fp8_device_timer_start(t->dev) != FP8_OK) return;
        const bool ran = clock_burst(t);
        if (fp8_device_timer_stop(t->dev, &ns) != FP8_OK || !ran || !(ns > 0)) return;
    }
}

bool bench_timer_guard_clocks(bench_timer *t, const fp8_device_info *info)
{
    size_t bytes = (size_t)256 << 20;
    while (bytes > info->max_buffer_range || bytes * 8 > info->memory_bytes) bytes /= 2;
    if (fp8_buffer_create(t->dev, bytes, &t->clock_bufs[0]) == FP8_OK &&
        fp8_buffer_create(t->dev, bytes, &t->clock_bufs[1]) == FP8_OK &&
        bench_copy_kernel(t->dev, t->clock_bufs[0], t->clock_bufs[1]) == FP8_OK &&
        fp8_device_synchronize(t->dev) == FP8_OK)
        return true;
    bench_timer_release(t);
    return false;
}

void bench_timer_release(bench_timer *t)
{
    fp8_buffer_free(t->clock_bufs[0]);
    fp8_buffer_free(t->clock_bufs[1]);
    t->clock_bufs[0] = t->clock_bufs[1] = NULL;
}

static double wall_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

/* One region of `calls` calls: device and host time in ns (host: the enqueues alone; where it exceeds the device
 * time, the device waited on the host and its time measures the host). On an error the timer is stopped all the
 * same, so that the device is left as it was. */
static fp8_status region(const bench_timer *t, bench_call_fn fn, const void *arg, uint32_t calls, double *device_ns,
                         double *host_ns)
{
    fp8_status st = fp8_device_timer_start(t->dev);
    if (st != FP8_OK) return st;
    const double t0 = wall_ns();
    for (uint32_t c = 0; c < calls && st == FP8_OK; c++) st = fn(t->dev, arg, c);
    *host_ns = wall_ns() - t0;
    const fp8_status stop = fp8_device_timer_stop(t->dev, device_ns);
    return st != FP8_OK ? st : stop;
}

static int cmp_double(const void *a, const void *b)
{
    const double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* The time of day of the samples, to line up with a clock log (nvidia-smi --query-gpu=timestamp,...). */
static void print_samples(FILE *f, const char *what, uint32_t calls, int warm_regions, double first_warm,
                          double last_warm, const double *s, const double *h, int samples)
{
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    fprintf(f, "    at %02d:%02d:%06.3f UTC", (int)(now.tv_sec / 3600 % 24), (int)(now.tv_sec / 60 % 60),
            (double)(now.tv_sec % 60) + now.tv_nsec * 1e-9);
    fprintf(f, "    samples %-12s (%u calls each; warm-up: %d regions, first %.4f, last %.4f ms per call), device ms "
               "per call:", what, calls, warm_regions, first_warm / calls / 1e6, last_warm / calls / 1e6);
    for (int i = 0; i < samples; i++) fprintf(f, " %.4f", s[i] / 1e6);
    fprintf(f, "; host ms per call:");
    for (int i = 0; i < samples; i++) fprintf(f, " %.4f", h[i] / 1e6);
    fprintf(f, "\n");
}

fp8_status bench_time(const bench_timer *t, bench_call_fn fn, const void *arg, uint32_t period, const char *what,
                      bench_times *out)
{
    if (period < 1) period = 1;
    const int samples = t->samples < 1 ? 1 : t->samples > BENCH_MAX_SAMPLES ? BENCH_MAX_SAMPLES : t->samples;
    raise_clocks(t);
    fp8_status st = fn(t->dev, arg, 0);
    if (st == FP8_OK) st = fp8_device_synchronize(t->dev);
    if (st != FP8_OK) return st;

    /* Regions of whole periods lasting region_ns, sized by one period's time; a period too short for the timer
     * to see gets as many calls as a region may hold. */
    double ns = 0, host = 0;
    if ((st = region(t, fn, arg, period, &ns, &host)) != FP8_OK) return st;
    const uint32_t most = t->max_calls > period ? t->max_calls - t->max_calls % period : period;
    uint32_t calls = period;
    if (!(ns > 0)) {
        calls = most;
    } else if (t->region_ns > ns) {
        const double want = ceil(t->region_ns / ns) * period;
        calls = want > most ? most : (uint32_t)want;
    }

    /* Warm up for warmup_ns, and on while regions still get faster (by 2% or more; up to 4 x warmup_ns): a clock
     * that is still rising shows as regions getting faster. */
    double prev = INFINITY, first_warm = NAN, last_warm = NAN;
    int warm_regions = 0;
    for (double warm = 0; warm < 4 * t->warmup_ns;) {
        clock_burst(t);
        if ((st = region(t, fn, arg, calls, &ns, &host)) != FP8_OK) return st;
        if (!(ns > 0)) break;
        if (!warm_regions++) first_warm = ns;
        last_warm = ns;
        warm += ns;
        if (warm >= t->warmup_ns && ns > 0.98 * prev) break;
        prev = ns;
    }

    double s[BENCH_MAX_SAMPLES], h[BENCH_MAX_SAMPLES];
    for (int i = 0; i < samples; i++) {
        clock_burst(t);
        if ((st = region(t, fn, arg, calls, &s[i], &h[i])) != FP8_OK) return st;
        s[i] /= calls;
        h[i] /= calls;
    }
    if (t->samples_out) print_samples(t->samples_out, what, calls, warm_regions, first_warm, last_warm, s, h, samples);
    qsort(s, (size_t)samples, sizeof s[0], cmp_double);
    qsort(h, (size_t)samples, sizeof h[0], cmp_double);
    *out = (bench_times){.device_ns = s[samples / 2], .host_ns = h[samples / 2], .calls = calls};
    return FP8_OK;
}
