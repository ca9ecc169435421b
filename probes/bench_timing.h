/* bench_timing: device timing for the probes (fp8bench, fp8moebench) that a GPU's clock management does not skew.
 * The H100 drops its SM clock from 1980 to 345 MHz within a second of light load (the host generating data or
 * running the CPU check between measurements) and needs a few hundred ms of steady work to raise it again; a
 * light operation timed right after such a pause, or after one whose own calls are too light to raise the
 * clock, measures the clock, not the kernel (docs/BENCHMARKS.md: runs 44-52, 61 and 63). Against that each
 * measurement here runs, in order:
 *   - 200 ms of a streaming copy (the clock guard: a copy raises the clock within its first 100 ms);
 *   - one call, which must report no error (pipelines compiled, caches filled);
 *   - warm-up regions until warmup_ns of device time has passed and regions stop getting faster (a clock still
 *     rising shows as regions getting faster), up to four times warmup_ns;
 *   - `samples` timed regions; the median counts.
 * A region is calls recorded back to back between device timestamps, so that the device never idles between
 * them waiting for the host; every warm-up and timed region is preceded by a few ms of the copy (untimed: the
 * timer's start waits for it), so that each starts at the clock the copy set. Without the clock guard
 * (bench_timer_guard_clocks not called, or it failed) the copies are left out and the rest is unchanged. */
#ifndef FP8_PROBES_BENCH_TIMING_H
#define FP8_PROBES_BENCH_TIMING_H

#include <fp8.h>

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#define BENCH_MAX_SAMPLES 64

/* One call of the operation timed. `call` counts the calls of a region from 0: an operation that rotates over
 * copies of its buffers picks one by it. */
typedef fp8_status (*bench_call_fn)(fp8_device *dev, const void *arg, uint32_t call);

/* How measurements on one device are taken. Set the fields, then optionally bench_timer_guard_clocks; release
 * with bench_timer_release. */
typedef struct bench_timer {
    fp8_device *dev;
    double warmup_ns;          /* device time of warm-up regions at least (0: none) */
    double region_ns;          /* device time a region lasts at least, as far as max_calls allows */
    uint32_t max_calls;        /* calls in one region at most (in whole periods; one period at least) */
    int samples;               /* timed regions, 1 to BENCH_MAX_SAMPLES */
    FILE *samples_out;         /* where every timed region is printed (--samples); NULL: nowhere */
    fp8_buffer *clock_bufs[2]; /* the clock guard's copy source and destination; NULL: no guard */
} bench_timer;

/* One measurement, per call: medians over the timed regions. */
typedef struct bench_times {
    double device_ns;
    double host_ns;            /* host time of the enqueues (batches submitted on the way included) */
    uint32_t calls;            /* calls in each region */
} bench_times;

/* One run of the backend's streaming copy kernel from src to dst (FP8_ERR_UNSUPPORTED where it has none). */
fp8_status bench_copy_kernel(fp8_device *dev, fp8_buffer *src, fp8_buffer *dst);

/* Turns on the clock guard: two buffers of up to 256 MiB (at most an eighth of the device's memory) for the copy
 * kernel. False, leaving the guard off, where the backend has no copy kernel or the buffers do not fit. */
bool bench_timer_guard_clocks(bench_timer *t, const fp8_device_info *info);

/* Frees the clock guard's buffers. */
void bench_timer_release(bench_timer *t);

/* Times `fn` on t->dev as described above. Each region holds a multiple of `period` calls (the rotation period of
 * the operation's buffers; 1 where it rotates none). `what` names the measurement in the printed samples.
 * FP8_OK, or the first error of the call or of the device's timer. */
fp8_status bench_time(const bench_timer *t, bench_call_fn fn, const void *arg, uint32_t period, const char *what,
                      bench_times *out);

#endif
