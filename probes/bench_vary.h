/* bench_vary: one benchmark process times several settings of a library knob, each configuration under every
 * setting in turn (`--vary NAME=v1/v2/...`; the value `default` leaves NAME unset). A comparison then shares the
 * process's data, oracle, baselines and clock guard, and its settings alternate row by row instead of being
 * minutes apart in separate processes, which on the GPU machine also saves the device time of each process's
 * set-up. Only knobs the library reads on each call vary this way (FP8_VK_GEMV, FP8_VK_GEMV_BATCH,
 * FP8_VK_COOPMAT_TILE, FP8_VK_COOPMAT_DIRECT, FP8_VK_MOE_GEMV, ...); those read when a device opens do not. */
#ifndef FP8_PROBES_BENCH_VARY_H
#define FP8_PROBES_BENCH_VARY_H

#include <stdbool.h>

#define BENCH_VARY_MAX 16

typedef struct bench_vary {
    char name[64];
    char values[BENCH_VARY_MAX][64];
    int count;               /* 0: no --vary; the loops then run once, under the environment as it is */
    char saved[256];         /* NAME's value before the first setting */
    bool had;                /* whether NAME was set then */
} bench_vary;

/* Parses NAME=v1/v2/... into v; false (v unchanged) when it is malformed or too long. */
bool bench_vary_parse(bench_vary *v, const char *arg);
/* Settings to loop over: 1 without --vary. */
int bench_vary_count(const bench_vary *v);
/* Puts setting i in the environment (nothing without --vary). */
void bench_vary_apply(const bench_vary *v, int i);
/* "NAME=value" of setting i, or "" without --vary. */
const char *bench_vary_label(const bench_vary *v, int i, char *buf, int size);
/* NAME as it was before bench_vary_apply. */
void bench_vary_restore(const bench_vary *v);

#endif
