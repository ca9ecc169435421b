/* The CPU reference GEMM, the oracle every GPU path is tested against. Obviously correct first:
 * each operand row is dequantized in double precision, then dot products accumulate in double. */
#include "cpu.h"
#include "../format/format.h"

#include <math.h>
#include <pthread.h>
#include <string.h>

/* Scale of element (r, c) of a scaled matrix. */
static double scale_at(const fp8i_scales *s, uint32_t r, uint32_t c)
{
    if (s->dtype == FP8_DTYPE_INVALID) return (double)s->tensor_scale;
    const uint8_t *base = (const uint8_t *)fp8i_cpu_ptr(s->buffer) + s->offset;
    size_t idx = (size_t)(r / s->block_rows) * s->blocks_per_row + c / s->block_cols;
    return (double)fp8i_load(s->dtype, base, idx) * (double)s->tensor_scale;
}

/* Row r of a matrix, dequantized: out[c] = decode(q[r, c]) * scale(r, c). */
static void dequant_row(const fp8i_matrix *m, const fp8i_scales *s, uint32_t r, uint32_t cols, double *out)
{
    const uint8_t *base = (const uint8_t *)fp8i_cpu_ptr(m->buffer) + m->offset;
    const size_t row0 = (size_t)r * m->row_stride;
    for (uint32_t c = 0; c < cols; c++) out[c] = (double)fp8i_load(m->dtype, base, row0 + c) * scale_at(s, r, c);
}

/* Round a double to float with round-to-odd: a later round-to-nearest-even to f16 or bf16 (both at
 * least two bits narrower than f32, subnormals included) then equals one direct rounding of the
 * double. Plain (float) first would round twice and can miss by one ulp at ties. */
static float to_f32_odd(double v)
{
    const float f = (float)v;
    if ((double)f == v || !isfinite(f)) return f;
    uint32_t bits;
    memcpy(&bits, &f, sizeof bits);
    if (bits & 1u) return f;
    return nextafterf(f, v > (double)f ? INFINITY : -INFINITY); /* the odd neighbour, on v's side */
}

static void store_result(fp8_dtype dtype, uint8_t *y, size_t index, double v)
{
    fp8i_store(dtype, y, index, dtype == FP8_F32 ? (float)v : to_f32_odd(v), FP8_OVERFLOW_CAST);
}

typedef struct job {
    const fp8i_gemm_args *a;
    const double *x;     /* M x K dequantized activations */
    double *wrow;        /* K scratch */
    uint32_t n0, n1;
} job;

static void *run_job(void *p)
{
    job *j = p;
    const fp8i_gemm_args *a = j->a;
    uint8_t *y = (uint8_t *)fp8i_cpu_ptr(a->y.buffer) + a->y.offset;
    const uint8_t *bias = a->bias.buffer ? (const uint8_t *)fp8i_cpu_ptr(a->bias.buffer) + a->bias.offset : NULL;
    for (uint32_t n = j->n0; n < j->n1; n++) {
        dequant_row(&a->w, &a->w_scales, n, a->k, j->wrow);
        const double b = bias ? (double)fp8i_load(a->bias.dtype, bias, n) : 0.0;
        for (uint32_t m = 0; m < a->m; m++) {
            const double *xr = j->x + (size_t)m * a->k;
            double acc = 0.0;
            for (uint32_t k = 0; k < a->k; k++) acc += xr[k] * j->wrow[k];
            store_result(a->y.dtype, y, (size_t)m * a->y.row_stride + n, acc + b);
        }
    }
    return NULL;
}

#define MAX_THREADS 16

fp8_status fp8i_cpu_gemm(fp8_device *dev, const fp8i_gemm_args *a)
{
    const fp8_context *ctx = dev->ctx;
    uint32_t threads = dev->entry->info.compute_units;
    if (threads > MAX_THREADS) threads = MAX_THREADS;
    /* Small problems are not worth a thread. */
    if ((uint64_t)a->m * a->n * a->k < (1u << 20) || threads < 1) threads = 1;
    if (threads > a->n) threads = a->n;

    size_t x_bytes, w_bytes;
    if (!fp8i_mul_size(a->m, a->k, &x_bytes) || !fp8i_mul_size(x_bytes, sizeof(double), &x_bytes) ||
        !fp8i_mul_size(threads, a->k, &w_bytes) || !fp8i_mul_size(w_bytes, sizeof(double), &w_bytes))
        return FP8I_FAIL(ctx, FP8_ERR_SIZE_OVERFLOW, "cpu gemm: %u x %u activations in double overflow size_t", a->m, a->k);
    double *x = fp8i_malloc(ctx, x_bytes);
    double *wrows = fp8i_malloc(ctx, w_bytes);
    if (!x || !wrows) {
        fp8i_free(ctx, x);
        fp8i_free(ctx, wrows);
        return FP8_ERR_OUT_OF_HOST_MEMORY;
    }
    for (uint32_t m = 0; m < a->m; m++) dequant_row(&a->x, &a->x_scales, m, a->k, x + (size_t)m * a->k);

    job jobs[MAX_THREADS];
    pthread_t tids[MAX_THREADS];
    uint32_t started = 0;
    for (uint32_t t = 0; t < threads; t++) {
        jobs[t] = (job){a, x, wrows + (size_t)t * a->k, (uint32_t)((uint64_t)a->n * t / threads),
                        (uint32_t)((uint64_t)a->n * (t + 1) / threads)};
        if (t == 0 || pthread_create(&tids[t], NULL, run_job, &jobs[t]) != 0) {
            if (t != 0) run_job(&jobs[t]); /* could not start a thread: do its share here */
        } else {
            started |= 1u << t;
        }
    }
    run_job(&jobs[0]);
    for (uint32_t t = 1; t < threads; t++)
        if (started & (1u << t)) pthread_join(tids[t], NULL);
    fp8i_free(ctx, x);
    fp8i_free(ctx, wrows);
    return FP8_OK;
}
