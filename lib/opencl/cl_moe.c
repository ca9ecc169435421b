/* The OpenCL MoE slots: routing, grouping, activation quantization, grouped GEMM and combine as kernels
 * (cl/moe.cl, cl/moe_gemm.cl) enqueued with no host round trip, and the per-device error word.
 *
 * The error word is one 32-bit int in a device buffer of its own, created (zeroed) on the first MoE call. A
 * kernel that meets a data error (a non-finite logit or activation, an expert id outside [0,E), a plan index
 * out of range) stores the negative fp8_status there with compare-and-swap from 0, so the first error wins.
 * fp8i_cl_synchronize reads it after clFinish, returns it and clears it; a device that never ran a MoE
 * kernel has no word and pays nothing.
 *
 * Environment, read at a device's first MoE call (tests and measurements):
 *   FP8_CL_MOE_KERNEL=gemv|tiled  run every grouped GEMM on one kernel, whatever the plan's row alignment;
 *   FP8_CL_MOE_NO_FP64=1          route in f32 and combine in float-float, as on devices without cl_khr_fp64;
 *   FP8_CL_MOE_ACC=ff|f64|f32     the grouped GEMM's sums (cl/moe_gemm.cl): float-float (the default), double
 *                                 (the default where fp64 runs at half the f32 rate), plain f32 (measurements
 *                                 only: it is off the double oracle);
 *   FP8_CL_MOE_GEMV_ROWS=all      one-token calls too take the decode kernel built for several rows per expert;
 *   FP8_CL_MOE_GROUP_STEPS=1      plans of one chunk (up to 256 slots) too are grouped in four launches.
 * and at every grouped GEMM call (so that one process can time the decode kernels against each other):
 *   FP8_CL_MOE_GEMV=old           decode plans take the previous decode kernel (a work-group of 32 lanes per output
 *                                 unit, cl/moe_gemm.cl's MOE_GEMV_OLD) instead of the warp-per-rows one;
 *   FP8_CL_MOE_GEMV=cvt           the warp-per-rows kernel, its double sums widening each weight with a conversion
 *                                 instead of moving its bits (measurements only);
 *   FP8_CL_MOE_GEMV_SHAPE=u,w     the warp-per-rows kernel with u output units per warp (1, 2, 4) and w warps per
 *                                 work-group (1, 2, 4, 8), for tuning;
 *   FP8_CL_MOE_GEMV_REGS=n        decode kernels built with -cl-nv-maxrregcount=n (16..255), where the device takes
 *                                 NVIDIA's compiler options; for tuning. */
#include "cl_internal.h"

#include "../backend/moe.h"
#include "cl/fp8_cl_kernels.h"

#include "../../cl/params.h"
#include "../../cl/moe_params.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

_Static_assert(FP8K_ERR_INVALID_ARGUMENT == FP8_ERR_INVALID_ARGUMENT && FP8K_ERR_EXPERT_ID == FP8_ERR_EXPERT_ID &&
                   FP8K_ERR_NOT_FINITE == FP8_ERR_NOT_FINITE,
               "the kernels' status values are fp8_status values");
_Static_assert(FP8K_MOE_NONE == FP8_MOE_NONE && FP8K_MOE_MAGIC == FP8_MOE_PLAN_MAGIC, "plan markers");
_Static_assert(FP8K_MOE_CHUNK == FP8I_MOE_CHUNK && FP8K_MOE_HEADER_WORDS == FP8I_MOE_HEADER_WORDS, "plan layout");
_Static_assert(FP8K_MOE_H_TOTAL_ROWS == FP8I_MOE_H_TOTAL_ROWS && FP8K_MOE_H_ACTIVE == FP8I_MOE_H_ACTIVE &&
                   FP8K_MOE_H_DROPPED == FP8I_MOE_H_DROPPED && FP8K_MOE_H_ROWS == FP8I_MOE_H_ROWS,
               "plan header words");
_Static_assert(FP8K_ACT_SWIGLU == FP8_MOE_ACT_SWIGLU && FP8K_ACT_GEGLU_TANH == FP8_MOE_ACT_GEGLU_TANH &&
                   FP8K_ACT_GELU_TANH == FP8_MOE_ACT_GELU_TANH,
               "activation codes");
_Static_assert(FP8K_E4M3FN == FP8_E4M3FN && FP8K_E2M1 == FP8_E2M1 && FP8K_F32 == FP8_F32, "dtype codes");
_Static_assert(sizeof(fp8k_moe_plan) % 8 == 0 && sizeof(fp8k_moe_route_params) % 8 == 0 &&
                   sizeof(fp8k_moe_quant_params) % 8 == 0 && sizeof(fp8k_moe_combine_params) % 8 == 0 &&
                   sizeof(fp8k_moe_gemm_params) % 8 == 0,
               "parameter blocks keep one layout on every ABI");

#define NONE FP8_MOE_NONE

enum { K_ROUTE, K_HIST, K_SCAN, K_FILL, K_SCATTER, K_GROUP_ONE, K_QUANT, K_COMBINE, K_COUNT_ };
static const char *const misc_kernel_names[K_COUNT_] = {
    "fp8_moe_route", "fp8_moe_group_hist", "fp8_moe_group_scan", "fp8_moe_group_fill",
    "fp8_moe_group_scatter", "fp8_moe_group_one", "fp8_moe_quantize", "fp8_moe_combine",
};
/* Work-group sizes the kernels require (their reqd_work_group_size); fill has none. */
static const size_t misc_kernel_wg[K_COUNT_] = {
    FP8K_MOE_ROUTE_LANES, FP8K_MOE_CHUNK, FP8K_MOE_CHUNK, 64, FP8K_MOE_CHUNK, FP8K_MOE_CHUNK, FP8K_MOE_QUANT_LANES,
    FP8K_MOE_COMBINE_LANES,
};

typedef struct misc_program {
    bool tried;
    fp8_status status;
    cl_program program;
    cl_kernel k[K_COUNT_];
} misc_program;

/* Which decode kernel a grouped GEMM program carries (cl/moe_gemm.cl). */
typedef enum gemv_variant { GEMV_NEW, GEMV_CVT, GEMV_OLD } gemv_variant;

/* What a grouped GEMM program is built for. */
typedef struct gemm_key {
    fp8_dtype wdt, xdt;
    gemv_variant variant;
    bool one_row;     /* the decode kernel alone, for one row per expert */
    bool fast;        /* GEMV_NEW/CVT: 16-byte aligned rows, no per-element scales (MOE_GEMV_FAST) */
    uint32_t units;   /* GEMV_NEW/CVT: output units per warp */
    uint32_t warps;   /* GEMV_NEW/CVT: warps per work-group */
    uint32_t regs;    /* -cl-nv-maxrregcount, 0: none */
} gemm_key;

typedef struct gemm_program {
    struct gemm_program *next;
    gemm_key key;
    fp8_status status;
    cl_program program;
    cl_kernel gemv, tiled; /* tiled: NULL in the one-row build */
    size_t gemv_wg;        /* the decode kernel's work-group size */
} gemm_program;

/* Which grouped GEMM kernel runs (FP8_CL_MOE_KERNEL=gemv|tiled forces one, for tests and benchmarks). */
typedef enum kernel_choice { CHOOSE_AUTO, CHOOSE_GEMV, CHOOSE_TILED } kernel_choice;

/* How the grouped GEMM sums (cl/moe_gemm.cl's acct). */
typedef enum acc_kind { ACC_FF, ACC_F64, ACC_F32 } acc_kind;
static const char *const acc_names[] = {"float-float", "double", "f32"};

/* NVIDIA data-centre GPUs (sm_60, 70, 80, 90, 100) run fp64 at half the f32 rate: there a double sum costs
 * one fma per multiply-add against float-float's ten f32 operations. Other GPUs run it at 1/32 or less. */
static bool fast_fp64(const fp8_device_info *info)
{
    const uint32_t major = info->caps.nv_compute_major, minor = info->caps.nv_compute_minor;
    return major >= 6 && major <= 10 && minor == 0;
}

struct fp8i_cl_moe {
    cl_mem err;                   /* the error word */
    bool fp64;                    /* cl_khr_fp64: routing scores, combine sums and epilogues in double */
    acc_kind acc;                 /* the grouped GEMM's sums */
    kernel_choice choice;
    bool gemv_all_rows;           /* FP8_CL_MOE_GEMV_ROWS=all: no one-row decode kernel (tests, measurements) */
    bool group_steps;             /* FP8_CL_MOE_GROUP_STEPS=1: plans of one chunk too take the four launches */
    bool fp64_denorm;             /* doubles keep their subnormals: the decode kernel may build weights from bits */
    bool nv_options;              /* cl_nv_compiler_options: -cl-nv-maxrregcount is understood */
    misc_program misc[2];         /* [0]: f32 routing and float-float combine; [1]: double */
    /* Grouped GEMM programs, built on first use, one per gemm_key. The one-row build serves one-token calls,
     * whose experts have one row each: its decode kernel keeps one row's sums instead of FP8K_MOE_GEMV_ROWS, in
     * fewer registers, and on the H100 took 0.80-0.91x the time of gate/up (sixth session, previous kernel). */
    gemm_program *gemm;
};

/* ------------------------------------------------------------------------------------------------
 * State, programs and the error word.
 * ---------------------------------------------------------------------------------------------- */
static fp8_status moe_state(fp8_device *dev, struct fp8i_cl_moe **out)
{
    fp8i_cl_device *d = fp8i_cl_dev(dev);
    const fp8_context *ctx = dev->ctx;
    if (d->moe) {
        *out = d->moe;
        return FP8_OK;
    }
    /* The grouping kernels take a chunk of 256 slots per work-group; the tiles take 16 x 16. */
    if (d->max_wg < FP8K_MOE_CHUNK)
        return FP8I_FAIL(ctx, FP8_ERR_UNSUPPORTED, "opencl moe: %s allows %u work-items per group, the kernels need %u",
                         dev->entry->info.name, d->max_wg, FP8K_MOE_CHUNK);
    struct fp8i_cl_moe *m = fp8i_calloc(ctx, 1, sizeof *m);
    if (!m) return FP8_ERR_OUT_OF_HOST_MEMORY;
    cl_device_fp_config fp64 = 0;
    if (clGetDeviceInfo(d->device, CL_DEVICE_DOUBLE_FP_CONFIG, sizeof fp64, &fp64, NULL) != CL_SUCCESS) fp64 = 0;
    m->fp64 = fp64 != 0 && !fp8i_env_flag("FP8_CL_MOE_NO_FP64");
    m->fp64_denorm = (fp64 & CL_FP_DENORM) != 0;
    m->nv_options = fp8i_cl_has_extension(ctx, d->device, "cl_nv_compiler_options");
    const char *acc = getenv("FP8_CL_MOE_ACC");
    m->acc = !m->fp64 ? ACC_FF : fast_fp64(&dev->entry->info) ? ACC_F64 : ACC_FF;
    if (acc && strcmp(acc, "ff") == 0) m->acc = ACC_FF;
    if (acc && strcmp(acc, "f64") == 0 && m->fp64) m->acc = ACC_F64;
    if (acc && strcmp(acc, "f32") == 0) m->acc = ACC_F32;
    const char *choice = getenv("FP8_CL_MOE_KERNEL");
    const char *rows = getenv("FP8_CL_MOE_GEMV_ROWS");
    m->gemv_all_rows = rows && strcmp(rows, "all") == 0;
    m->group_steps = fp8i_env_flag("FP8_CL_MOE_GROUP_STEPS");
    m->choice = !choice ? CHOOSE_AUTO : strcmp(choice, "gemv") == 0 ? CHOOSE_GEMV
                                      : strcmp(choice, "tiled") == 0 ? CHOOSE_TILED : CHOOSE_AUTO;
    cl_int err = CL_SUCCESS;
    m->err = clCreateBuffer(d->context, CL_MEM_READ_WRITE, sizeof(cl_int), NULL, &err);
    if (err == CL_SUCCESS) {
        const cl_int zero = 0;
        err = clEnqueueFillBuffer(d->queue, m->err, &zero, sizeof zero, 0, sizeof zero, 0, NULL, NULL);
    }
    if (err != CL_SUCCESS) {
        if (m->err) clReleaseMemObject(m->err);
        fp8i_free(ctx, m);
        return fp8i_cl_status(ctx, err, "opencl moe: error word");
    }
    FP8I_DEBUG(ctx, "opencl moe: %s, %s, %s sums", m->fp64 ? "double routing, combine and epilogues" : "f32 routing",
               m->choice == CHOOSE_AUTO ? "kernels by plan" : choice, acc_names[m->acc]);
    d->moe = m;
    *out = m;
    return FP8_OK;
}

void fp8i_cl_moe_release(fp8_device *dev)
{
    fp8i_cl_device *d = fp8i_cl_dev(dev);
    struct fp8i_cl_moe *m = d->moe;
    if (!m) return;
    for (int f = 0; f < 2; f++) {
        for (int k = 0; k < K_COUNT_; k++)
            if (m->misc[f].k[k]) clReleaseKernel(m->misc[f].k[k]);
        if (m->misc[f].program) clReleaseProgram(m->misc[f].program);
    }
    while (m->gemm) {
        gemm_program *g = m->gemm;
        m->gemm = g->next;
        if (g->gemv) clReleaseKernel(g->gemv);
        if (g->tiled) clReleaseKernel(g->tiled);
        if (g->program) clReleaseProgram(g->program);
        fp8i_free(dev->ctx, g);
    }
    if (m->err) clReleaseMemObject(m->err);
    fp8i_free(dev->ctx, m);
    d->moe = NULL;
}

fp8_status fp8i_cl_moe_take_error(fp8_device *dev)
{
    fp8i_cl_device *d = fp8i_cl_dev(dev);
    if (!d->moe) return FP8_OK;
    cl_int word = 0;
    cl_int err = clEnqueueReadBuffer(d->queue, d->moe->err, CL_TRUE, 0, sizeof word, &word, 0, NULL, NULL);
    if (err != CL_SUCCESS) return fp8i_cl_status(dev->ctx, err, "opencl moe: reading the error word");
    if (word == 0) return FP8_OK;
    const cl_int zero = 0;
    err = clEnqueueWriteBuffer(d->queue, d->moe->err, CL_TRUE, 0, sizeof zero, &zero, 0, NULL, NULL);
    if (err != CL_SUCCESS) return fp8i_cl_status(dev->ctx, err, "opencl moe: clearing the error word");
    const fp8_status st = (fp8_status)word;
    return FP8I_FAIL(dev->ctx, st, "opencl moe: a kernel reported a data error: %s", fp8_status_name(st));
}

/* Build options shared by the MoE programs: the backend's language version and decode choices. */
static fp8_status build(fp8_device *dev, const char *body, const char *defines, bool fp64, cl_program *out)
{
    const fp8i_cl_device *d = fp8i_cl_dev(dev);
    char options[400];
    const int n = snprintf(options, sizeof options, "%s%s%s %s %s", d->std_option, d->decode_options,
                           fp64 ? " -DMOE_FP64=1" : "", defines, d->test_extra_options);
    if (n < 0 || (size_t)n >= sizeof options) return FP8I_FAIL(dev->ctx, FP8_ERR_INTERNAL, "opencl moe: options too long");
    const char *sources[4] = {fp8i_cl_src_params_h, fp8i_cl_src_moe_params_h, fp8i_cl_src_decode_cl, body};
    return fp8i_cl_build(dev, sources, 4, options, out);
}

static fp8_status create_kernel(fp8_device *dev, cl_program program, const char *name, size_t wg, cl_kernel *out)
{
    cl_int err = CL_SUCCESS;
    *out = clCreateKernel(program, name, &err);
    if (err != CL_SUCCESS) return fp8i_cl_status(dev->ctx, err, "opencl moe: clCreateKernel");
    const size_t max = fp8i_cl_kernel_max_wg(dev, *out);
    if (max < wg)
        return FP8I_FAIL(dev->ctx, FP8_ERR_UNSUPPORTED, "opencl moe: %s runs at most %zu work-items per group on %s, needs %zu",
                         name, max, dev->entry->info.name, wg);
    return FP8_OK;
}

/* The routing/grouping/quantize/combine program, with double (fp64) or f32 arithmetic. */
static fp8_status misc_kernel(fp8_device *dev, bool fp64, int which, cl_kernel *out)
{
    struct fp8i_cl_moe *m;
    fp8_status st = moe_state(dev, &m);
    if (st != FP8_OK) return st;
    misc_program *p = &m->misc[fp64];
    if (!p->tried) {
        p->tried = true;
        p->status = build(dev, fp8i_cl_src_moe_cl, "", fp64, &p->program);
        for (int k = 0; k < K_COUNT_ && p->status == FP8_OK; k++)
            p->status = create_kernel(dev, p->program, misc_kernel_names[k], misc_kernel_wg[k], &p->k[k]);
    }
    if (p->status != FP8_OK) return FP8I_FAIL(dev->ctx, p->status, "opencl moe: the MoE program is not usable");
    *out = p->k[which];
    return FP8_OK;
}

/* Rows of sums per pass of the decode kernel, as cl/moe_gemm.cl's GR. */
static uint32_t gemv_rows(bool one_row) { return one_row ? 1 : FP8K_MOE_GEMV_ROWS; }

static bool same_key(const gemm_key *a, const gemm_key *b)
{
    return a->wdt == b->wdt && a->xdt == b->xdt && a->variant == b->variant && a->one_row == b->one_row &&
           a->fast == b->fast && a->units == b->units && a->warps == b->warps && a->regs == b->regs;
}

/* The grouped GEMM kernels for a key, built on first use (a failed build is remembered too). */
static fp8_status gemm_kernels(fp8_device *dev, const gemm_key *key, gemm_program **out)
{
    struct fp8i_cl_moe *m;
    fp8_status st = moe_state(dev, &m);
    if (st != FP8_OK) return st;
    gemm_program *p = m->gemm;
    while (p && !same_key(&p->key, key)) p = p->next;
    if (!p) {
        if (!(p = fp8i_calloc(dev->ctx, 1, sizeof *p))) return FP8_ERR_OUT_OF_HOST_MEMORY;
        p->key = *key;
        p->next = m->gemm;
        m->gemm = p;
        char defines[200];
        int n = snprintf(defines, sizeof defines, "-DWDT=%d -DXDT=%d%s%s", (int)key->wdt, (int)key->xdt,
                         m->acc == ACC_F64 ? " -DMOE_ACC_F64=1" : m->acc == ACC_F32 ? " -DMOE_F32_ACC=1" : "",
                         key->one_row ? " -DMOE_GEMV_ROWS=1" : "");
        if (key->variant == GEMV_OLD) {
            n += snprintf(defines + n, sizeof defines - n, " -DMOE_GEMV_OLD=1");
            p->gemv_wg = FP8K_MOE_GEMV_LANES * FP8K_MOE_GEMV_UNITS;
        } else {
            /* Weights built from their bits: code 0 and the subnormal codes become double subnormals. */
            const bool bits = key->variant == GEMV_NEW && m->acc == ACC_F64 && m->fp64_denorm;
            n += snprintf(defines + n, sizeof defines - n, " -DMOE_GEMV_FAST=%d -DMOE_NU=%u -DMOE_NW=%u%s", key->fast,
                          key->units, key->warps, bits ? " -DMOE_WBITS=1" : "");
            p->gemv_wg = (size_t)32 * key->warps;
        }
        if (key->regs) n += snprintf(defines + n, sizeof defines - n, " -cl-nv-maxrregcount=%u", key->regs);
        p->status = n < 0 || (size_t)n >= sizeof defines
                        ? FP8I_FAIL(dev->ctx, FP8_ERR_INTERNAL, "opencl moe: options too long")
                        : build(dev, fp8i_cl_src_moe_gemm_cl, defines, m->fp64, &p->program);
        if (p->status == FP8_OK) p->status = create_kernel(dev, p->program, "fp8_moe_gemv", p->gemv_wg, &p->gemv);
        if (p->status == FP8_OK && !key->one_row)
            p->status = create_kernel(dev, p->program, "fp8_moe_tiled", FP8K_MOE_TILE_T * FP8K_MOE_TILE_T, &p->tiled);
    }
    if (p->status != FP8_OK)
        return FP8I_FAIL(dev->ctx, p->status, "opencl moe: the grouped GEMM%s for %s x %s is not usable",
                         key->one_row ? " (one-row build)" : "", fp8_dtype_name(key->wdt), fp8_dtype_name(key->xdt));
    *out = p;
    return FP8_OK;
}

/* The decode kernel and its shape for a call (the environment is read here, at every call: see the top). One
 * row per expert: two units (four weight rows) per warp. Several rows: four units for FP8 weights, one for E2M1.
 * A sweep on the H100 (BENCHMARKS.md, run 37; Qwen3-30B-A3B and gpt-oss-20b at 1 and 8 tokens) put every shape
 * of the one-row build within 5% of each other, and at eight tokens four units took Qwen3's layer from 0.396 to
 * 0.322 ms while gpt-oss's MXFP4 layer was fastest with one (0.491 ms; 0.524 with four). */
static gemm_key gemv_key(const fp8i_cl_device *d, const struct fp8i_cl_moe *m, const fp8i_moe_gemm_args *a,
                         const fp8k_moe_gemm_params *p, bool one_row)
{
    gemm_key k = {.wdt = a->w.dtype, .xdt = a->x.dtype, .variant = GEMV_NEW, .one_row = one_row};
    const char *v = getenv("FP8_CL_MOE_GEMV");
    if (v && strcmp(v, "old") == 0) k.variant = GEMV_OLD;
    if (v && strcmp(v, "cvt") == 0) k.variant = GEMV_CVT;
    const char *r = getenv("FP8_CL_MOE_GEMV_REGS");
    const unsigned regs = r ? (unsigned)strtoul(r, NULL, 10) : 0;
    if (m->nv_options && regs >= 16 && regs <= 255) k.regs = regs;
    if (k.variant == GEMV_OLD) return k;
    k.fast = (p->flags & FP8K_W_ALIGNED) && (p->flags & FP8K_X_ALIGNED) && p->ws.mode != FP8K_SCALE_GENERIC &&
             p->xs.mode != FP8K_SCALE_GENERIC;
    k.units = one_row ? 2 : a->w.dtype == FP8_E2M1 ? 1 : 4;
    k.warps = FP8K_MOE_GEMV_WARPS;
    const char *shape = getenv("FP8_CL_MOE_GEMV_SHAPE");
    unsigned u = 0, w = 0;
    if (shape && sscanf(shape, "%u,%u", &u, &w) == 2 && (u == 1 || u == 2 || u == 4) &&
        (w == 1 || w == 2 || w == 4 || w == 8)) {
        k.units = u;
        k.warps = w;
    }
    /* Without shuffles the lanes' sums meet in local memory: 8 bytes per sum and work-item. */
    while (!d->ptx && k.warps > 1 && (size_t)8 * gemv_rows(one_row) * 2 * k.units * 32 * k.warps > d->local_mem)
        k.warps /= 2;
    return k;
}

/* ------------------------------------------------------------------------------------------------
 * Arguments.
 * ---------------------------------------------------------------------------------------------- */
typedef struct karg {
    size_t size;
    const void *value; /* NULL with a size: local memory of that many bytes */
} karg;

static fp8_status set_args(fp8_device *dev, cl_kernel k, const karg *args, cl_uint count)
{
    cl_int err = CL_SUCCESS;
    for (cl_uint i = 0; i < count && err == CL_SUCCESS; i++) err = clSetKernelArg(k, i, args[i].size, args[i].value);
    return err == CL_SUCCESS ? FP8_OK : fp8i_cl_status(dev->ctx, err, "opencl moe: clSetKernelArg");
}

#define MEM(x) {sizeof(cl_mem), &(x)}

static size_t round_up(size_t v, size_t to) { return (v + to - 1) / to * to; }

/* Bytes of one row of `elements` (validated sizes: cannot fail). */
static size_t row_bytes(fp8_dtype dt, size_t elements)
{
    size_t b = 0;
    fp8_dtype_storage_size(dt, elements, &b);
    return b;
}

static fp8k_moe_plan plan_params(const fp8i_moe_plan *p)
{
    fp8k_moe_plan k = {0};
    k.base = p->offset / 4;
    k.counts = p->counts_at;
    k.offsets = p->offsets_at;
    k.active = p->active_at;
    k.row_token = p->row_token_at;
    k.row_slot = p->row_slot_at;
    k.slot_row = p->slot_row_at;
    k.tile_expert = p->tile_expert_at;
    k.workspace = p->workspace_at;
    k.m = p->m;
    k.top_k = p->top_k;
    k.experts = p->experts;
    k.row_align = p->row_align;
    k.slots = p->slots;
    k.rows = p->rows;
    k.tiles = p->tiles;
    k.chunks = p->slots / FP8I_MOE_CHUNK + (p->slots % FP8I_MOE_CHUNK != 0);
    return k;
}

/* Kernel indices are 32-bit and NDRanges stay below 2^31 work-items per dimension on every driver. */
static fp8_status check_grid(fp8_device *dev, const char *what, uint64_t groups, uint64_t per_group)
{
    if (groups * per_group < (1ull << 31)) return FP8_OK;
    return FP8I_FAIL(dev->ctx, FP8_ERR_TOO_LARGE, "opencl moe: %s needs %llu work-items in one dimension", what,
                     (unsigned long long)(groups * per_group));
}

/* ------------------------------------------------------------------------------------------------
 * Routing.
 * ---------------------------------------------------------------------------------------------- */
fp8_status fp8i_cl_moe_route(fp8_device *dev, const fp8i_moe_route_args *a)
{
    fp8i_cl_device *d = fp8i_cl_dev(dev);
    struct fp8i_cl_moe *m;
    fp8_status st = moe_state(dev, &m);
    if (st != FP8_OK) return st;
    if ((st = check_grid(dev, "routing", a->m, FP8K_MOE_ROUTE_LANES)) != FP8_OK) return st;
    /* Keys of all experts stay in local memory: double where it fits, else f32. */
    const size_t fixed = 4096;
    const bool fp64 = m->fp64 && ((size_t)a->experts + a->n_group) * 8 + fixed <= d->local_mem;
    const size_t rsize = fp64 ? 8 : 4;
    if (((size_t)a->experts + a->n_group) * rsize + fixed > d->local_mem)
        return FP8I_FAIL(dev->ctx, FP8_ERR_UNSUPPORTED, "opencl moe: %u experts' keys do not fit the %u bytes of local memory",
                         a->experts, d->local_mem);
    cl_kernel k;
    if ((st = misc_kernel(dev, fp64, K_ROUTE, &k)) != FP8_OK) return st;
    fp8k_moe_route_params p = {0};
    p.l_off = a->logits.offset;
    p.l_stride = a->logits.row_stride;
    p.ids_off = a->ids.offset;
    p.ids_stride = a->ids.row_stride;
    p.w_off = a->weights.offset;
    p.w_stride = a->weights.row_stride;
    p.experts = a->experts;
    p.top_k = a->top_k;
    p.l_dtype = (fp8k_u32)a->logits.dtype;
    p.scoring = a->scoring == FP8_MOE_SCORE_SIGMOID;
    p.n_group = a->n_group;
    p.topk_group = a->topk_group;
    p.group_max = a->group_score == FP8_MOE_GROUP_SCORE_MAX;
    p.renormalize = a->renormalize;
    p.scaling = a->scaling;
    cl_mem logits = fp8i_cl_mem(a->logits.buffer), bias = logits;
    if (a->bias.buffer) {
        bias = fp8i_cl_mem(a->bias.buffer);
        p.b_off = a->bias.offset;
        p.has_bias = 1;
    }
    cl_mem ids = fp8i_cl_mem(a->ids.buffer), wts = fp8i_cl_mem(a->weights.buffer);
    const karg args[] = {MEM(logits), MEM(bias), MEM(ids), MEM(wts), MEM(m->err), {sizeof p, &p},
                         {(size_t)a->experts * rsize, NULL}, {(size_t)(a->n_group ? a->n_group : 1) * rsize, NULL}};
    if ((st = set_args(dev, k, args, 8)) != FP8_OK) return st;
    const size_t local = FP8K_MOE_ROUTE_LANES, global = (size_t)a->m * local;
    return fp8i_cl_launch(dev, k, 1, &global, &local);
}

/* ------------------------------------------------------------------------------------------------
 * Grouping.
 * ---------------------------------------------------------------------------------------------- */
fp8_status fp8i_cl_moe_group(fp8_device *dev, const fp8i_moe_group_args *a)
{
    fp8i_cl_device *d = fp8i_cl_dev(dev);
    struct fp8i_cl_moe *m;
    fp8_status st = moe_state(dev, &m);
    if (st != FP8_OK) return st;
    const fp8k_moe_plan pl = plan_params(&a->plan);
    if ((size_t)pl.experts * 4 > d->local_mem)
        return FP8I_FAIL(dev->ctx, FP8_ERR_UNSUPPORTED, "opencl moe: a histogram of %u experts exceeds local memory",
                         pl.experts);
    if ((st = check_grid(dev, "grouping", pl.chunks, FP8K_MOE_CHUNK)) != FP8_OK ||
        (st = check_grid(dev, "grouping", pl.rows > pl.tiles ? pl.rows : pl.tiles, 1)) != FP8_OK)
        return st;
    cl_mem ids = fp8i_cl_mem(a->ids.buffer), plan = fp8i_cl_mem(a->plan.buffer);
    const cl_ulong ids_off = a->ids.offset, ids_stride = a->ids.row_stride;
    const size_t ch = FP8K_MOE_CHUNK, chunks_global = (size_t)pl.chunks * ch;
    if (pl.chunks == 1 && !m->group_steps) {
        /* Decode: the four steps in one work-group, one launch. */
        cl_kernel one;
        if ((st = misc_kernel(dev, m->fp64, K_GROUP_ONE, &one)) != FP8_OK) return st;
        const karg args[] = {MEM(ids), {sizeof ids_off, &ids_off}, {sizeof ids_stride, &ids_stride}, MEM(plan),
                             {sizeof pl, &pl}, MEM(m->err), {(size_t)pl.experts * 4, NULL}};
        if ((st = set_args(dev, one, args, 7)) != FP8_OK) return st;
        return fp8i_cl_launch(dev, one, 1, &ch, &ch);
    }
    cl_kernel hist, scan, fill, scatter;
    if ((st = misc_kernel(dev, m->fp64, K_HIST, &hist)) != FP8_OK || (st = misc_kernel(dev, m->fp64, K_SCAN, &scan)) != FP8_OK ||
        (st = misc_kernel(dev, m->fp64, K_FILL, &fill)) != FP8_OK ||
        (st = misc_kernel(dev, m->fp64, K_SCATTER, &scatter)) != FP8_OK)
        return st;
    const karg hist_args[] = {MEM(ids), {sizeof ids_off, &ids_off}, {sizeof ids_stride, &ids_stride}, MEM(plan),
                              {sizeof pl, &pl}, {(size_t)pl.experts * 4, NULL}};
    if ((st = set_args(dev, hist, hist_args, 6)) != FP8_OK || (st = fp8i_cl_launch(dev, hist, 1, &chunks_global, &ch)) != FP8_OK)
        return st;
    const karg scan_args[] = {MEM(plan), {sizeof pl, &pl}, MEM(m->err)};
    if ((st = set_args(dev, scan, scan_args, 3)) != FP8_OK || (st = fp8i_cl_launch(dev, scan, 1, &ch, &ch)) != FP8_OK)
        return st;
    const size_t fill_local = 64, fill_global = round_up(pl.rows > pl.tiles ? pl.rows : pl.tiles, fill_local);
    const karg fill_args[] = {MEM(plan), {sizeof pl, &pl}};
    if ((st = set_args(dev, fill, fill_args, 2)) != FP8_OK ||
        (st = fp8i_cl_launch(dev, fill, 1, &fill_global, &fill_local)) != FP8_OK)
        return st;
    const karg scatter_args[] = {MEM(ids), {sizeof ids_off, &ids_off}, {sizeof ids_stride, &ids_stride}, MEM(plan),
                                 {sizeof pl, &pl}};
    if ((st = set_args(dev, scatter, scatter_args, 5)) != FP8_OK) return st;
    return fp8i_cl_launch(dev, scatter, 1, &chunks_global, &ch);
}

/* ------------------------------------------------------------------------------------------------
 * Activation quantization.
 * ---------------------------------------------------------------------------------------------- */
fp8_status fp8i_cl_moe_quantize_rows(fp8_device *dev, const fp8i_moe_quant_args *a)
{
    struct fp8i_cl_moe *m;
    fp8_status st = moe_state(dev, &m);
    if (st != FP8_OK) return st;
    /* Blocks per group: about 256 columns (a row of one block stays one group). */
    const uint32_t blocks = a->cols / a->block_cols + (a->cols % a->block_cols != 0);
    const uint32_t cb = a->block_cols >= 256 ? 1 : 256 / a->block_cols, gx = blocks / cb + (blocks % cb != 0);
    if ((st = check_grid(dev, "quantization", gx, FP8K_MOE_QUANT_LANES)) != FP8_OK) return st;
    cl_kernel k;
    if ((st = misc_kernel(dev, m->fp64, K_QUANT, &k)) != FP8_OK) return st;
    fp8k_moe_quant_params p = {0};
    p.src_off = a->src.offset;
    p.src_stride = a->src.row_stride;
    p.dst_off = a->dst.offset;
    p.dst_stride = a->dst.row_stride;
    p.sc_off = a->scales.offset;
    p.sc_stride = a->scales.row_stride;
    p.rows = a->rows;
    p.cols = a->cols;
    p.block_cols = a->block_cols;
    p.blocks = blocks;
    p.cb = cb;
    p.src_dtype = (fp8k_u32)a->src.dtype;
    p.dst_dtype = (fp8k_u32)a->dst.dtype;
    cl_mem src = fp8i_cl_mem(a->src.buffer), dst = fp8i_cl_mem(a->dst.buffer), sc = fp8i_cl_mem(a->scales.buffer);
    cl_mem plan = src;
    if (a->plan.buffer) {
        p.plan = plan_params(&a->plan);
        p.has_plan = 1;
        plan = fp8i_cl_mem(a->plan.buffer);
    }
    const karg args[] = {MEM(src), MEM(dst), MEM(sc), MEM(plan), MEM(m->err), {sizeof p, &p}};
    if ((st = set_args(dev, k, args, 6)) != FP8_OK) return st;
    const size_t local[2] = {FP8K_MOE_QUANT_LANES, 1}, global[2] = {(size_t)gx * FP8K_MOE_QUANT_LANES, a->rows};
    return fp8i_cl_launch(dev, k, 2, global, local);
}

/* ------------------------------------------------------------------------------------------------
 * Grouped GEMM.
 * ---------------------------------------------------------------------------------------------- */
/* fp8k_scale of a validated scale tensor (the GEMM's filler, so new fields reach MoE too): how it varies along
 * K decides the kernels' inner loop. */
static void fill_scale(const fp8i_scales *s, fp8k_scale *out)
{
    fp8i_cl_fill_scale(s, out);
    out->offset = s->buffer ? s->offset : 0;
    out->mode = !out->dtype || s->blocks_per_row <= 1 ? FP8K_SCALE_ROWCONST
                : s->block_cols % 16 == 0            ? FP8K_SCALE_K16
                                                     : FP8K_SCALE_GENERIC;
}

fp8_status fp8i_cl_moe_grouped_gemm(fp8_device *dev, const fp8i_moe_gemm_args *a)
{
    struct fp8i_cl_moe *m;
    fp8_status st = moe_state(dev, &m);
    if (st != FP8_OK) return st;
    const bool dense = a->plan.buffer == NULL;
    const bool gated = a->n_out != a->n;
    fp8k_moe_gemm_params p = {0};
    p.w_off = a->w.offset;
    p.w_estride = a->w_expert_stride;
    p.w_stride = row_bytes(a->w.dtype, a->w.row_stride);
    p.ws_estride = a->w_scales_expert_stride;
    p.x_off = a->x.offset;
    p.x_stride = row_bytes(a->x.dtype, a->x.row_stride);
    p.y_off = a->y.offset;
    p.y_stride = a->y.row_stride;
    fill_scale(&a->w_scales, &p.ws);
    fill_scale(&a->x_scales, &p.xs);
    p.n = a->n;
    p.k = a->k;
    p.n_out = a->n_out;
    p.units = gated ? a->n_out : a->n / 2 + (a->n & 1);
    p.y_dtype = (fp8k_u32)a->y.dtype;
    p.act = (fp8k_u32)a->activation;
    p.gathered = a->x_gathered;
    p.dense = dense;
    if (a->bias.buffer) {
        p.b_off = a->bias.offset;
        p.b_stride = a->bias.row_stride;
        p.b_dtype = (fp8k_u32)a->bias.dtype;
    }
    if (a->w_tensor_scales.buffer) {
        p.ts_off = a->w_tensor_scales.offset;
        p.has_ts = 1;
    }
    if (p.w_off % 16 == 0 && p.w_estride % 16 == 0 && p.w_stride % 16 == 0) p.flags |= FP8K_W_ALIGNED;
    if (p.x_off % 16 == 0 && p.x_stride % 16 == 0) p.flags |= FP8K_X_ALIGNED;
    p.plan = dense ? (fp8k_moe_plan){.m = a->plan.m, .top_k = 1, .experts = 1, .row_align = 1, .rows = a->plan.m}
                   : plan_params(&a->plan);

    /* Decode plans (row_align 1) and small dense calls stream weights; prefill plans take tiles. */
    bool tiled = dense ? a->plan.m > 2 * FP8K_MOE_GEMV_ROWS : a->plan.row_align > 1;
    if (m->choice == CHOOSE_GEMV) tiled = false;
    if (m->choice == CHOOSE_TILED) tiled = true;
    /* One token: every expert (and a dense call) has one row. */
    const bool one_row = !tiled && a->plan.m == 1 && !m->gemv_all_rows;
    const gemm_key key = gemv_key(fp8i_cl_dev(dev), m, a, &p, one_row);
    gemm_program *g = NULL;
    if ((st = gemm_kernels(dev, &key, &g)) != FP8_OK) return st;
    cl_mem w = fp8i_cl_mem(a->w.buffer), x = fp8i_cl_mem(a->x.buffer), y = fp8i_cl_mem(a->y.buffer);
    cl_mem ws = a->w_scales.buffer ? fp8i_cl_mem(a->w_scales.buffer) : w;
    cl_mem ts = a->w_tensor_scales.buffer ? fp8i_cl_mem(a->w_tensor_scales.buffer) : w;
    cl_mem b = a->bias.buffer ? fp8i_cl_mem(a->bias.buffer) : w;
    cl_mem xs = a->x_scales.buffer ? fp8i_cl_mem(a->x_scales.buffer) : w;
    cl_mem plan = dense ? w : fp8i_cl_mem(a->plan.buffer);
    size_t global[2], local[2];
    cl_kernel k;
    if (tiled) {
        const uint64_t blocks = dense ? (a->plan.m + FP8K_MOE_TILE_M - 1) / FP8K_MOE_TILE_M
                                      : (uint64_t)a->plan.tiles * (p.row_blocks = (a->plan.row_align + FP8K_MOE_TILE_M - 1) /
                                                                                  FP8K_MOE_TILE_M);
        const uint64_t ublocks = (p.units + FP8K_MOE_TILE_U - 1) / FP8K_MOE_TILE_U;
        if ((st = check_grid(dev, "grouped gemm", blocks, FP8K_MOE_TILE_T)) != FP8_OK ||
            (st = check_grid(dev, "grouped gemm", ublocks, FP8K_MOE_TILE_T)) != FP8_OK)
            return st;
        local[0] = local[1] = FP8K_MOE_TILE_T;
        global[0] = (size_t)ublocks * FP8K_MOE_TILE_T;
        global[1] = (size_t)blocks * FP8K_MOE_TILE_T;
        k = g->tiled;
    } else {
        /* output units per work-group: one per 32 lanes (previous kernel), or the warps' */
        const uint32_t per_group = key.variant == GEMV_OLD ? FP8K_MOE_GEMV_UNITS : key.units * key.warps;
        const uint64_t ublocks = (p.units + per_group - 1) / per_group;
        if ((st = check_grid(dev, "grouped gemm", ublocks, g->gemv_wg)) != FP8_OK) return st;
        local[0] = g->gemv_wg;
        local[1] = 1;
        global[0] = (size_t)ublocks * local[0];
        /* Group y is an index into the active list, which holds at most one expert per (token, k) slot: a grid
         * of every expert launched, at one token of DeepSeek-V3, 32 times the groups that have work. */
        global[1] = dense ? 1 : a->plan.slots < a->plan.experts ? a->plan.slots : a->plan.experts;
        k = g->gemv;
    }
    /* One launch per buffer of experts (the caller's spread, or the one buffer), each skipping the others'. */
    const uint32_t per_buffer = a->w_buffers ? a->w_experts_per_buffer : a->plan.experts;
    for (uint32_t e0 = 0; e0 < a->plan.experts; e0 += per_buffer) {
        size_t w_off;
        w = fp8i_cl_mem(fp8i_moe_expert_w(a, e0, &w_off));
        p.w_off = w_off;
        p.e_lo = e0;
        p.e_hi = a->plan.experts - e0 > per_buffer ? e0 + per_buffer : a->plan.experts;
        const karg args[] = {MEM(w), MEM(ws), MEM(ts), MEM(b), MEM(x), MEM(xs), MEM(y), MEM(plan), MEM(m->err),
                             {sizeof p, &p}};
        if ((st = set_args(dev, k, args, 10)) != FP8_OK || (st = fp8i_cl_launch(dev, k, 2, global, local)) != FP8_OK)
            return st;
    }
    return FP8_OK;
}

/* ------------------------------------------------------------------------------------------------
 * Combine.
 * ---------------------------------------------------------------------------------------------- */
fp8_status fp8i_cl_moe_combine(fp8_device *dev, const fp8i_moe_combine_args *a)
{
    struct fp8i_cl_moe *m;
    fp8_status st = moe_state(dev, &m);
    if (st != FP8_OK) return st;
    if ((st = check_grid(dev, "combine", a->hidden, 1)) != FP8_OK || (st = check_grid(dev, "combine", a->plan.m, 1)) != FP8_OK)
        return st;
    cl_kernel k;
    if ((st = misc_kernel(dev, m->fp64, K_COMBINE, &k)) != FP8_OK) return st;
    fp8k_moe_combine_params p = {0};
    p.r_off = a->rows.offset;
    p.r_stride = a->rows.row_stride;
    p.w_off = a->weights.offset;
    p.w_stride = a->weights.row_stride;
    p.y_off = a->y.offset;
    p.y_stride = a->y.row_stride;
    p.plan = plan_params(&a->plan);
    p.hidden = a->hidden;
    p.r_dtype = (fp8k_u32)a->rows.dtype;
    p.y_dtype = (fp8k_u32)a->y.dtype;
    cl_mem rows = fp8i_cl_mem(a->rows.buffer), wts = fp8i_cl_mem(a->weights.buffer), y = fp8i_cl_mem(a->y.buffer);
    cl_mem shared = rows, plan = fp8i_cl_mem(a->plan.buffer);
    if (a->shared.buffer) {
        shared = fp8i_cl_mem(a->shared.buffer);
        p.s_off = a->shared.offset;
        p.s_stride = a->shared.row_stride;
        p.s_dtype = (fp8k_u32)a->shared.dtype;
    }
    const karg args[] = {MEM(rows), MEM(wts), MEM(shared), MEM(y), MEM(plan), MEM(m->err), {sizeof p, &p}};
    if ((st = set_args(dev, k, args, 7)) != FP8_OK) return st;
    const size_t local[2] = {FP8K_MOE_COMBINE_LANES, 1};
    const size_t global[2] = {round_up(a->hidden, local[0]), a->plan.m};
    return fp8i_cl_launch(dev, k, 2, global, local);
}

uint32_t fp8i_cl_moe_row_align(const fp8_device *dev, uint32_t m, uint32_t top_k, uint32_t experts)
{
    (void)dev;
    /* Tiles pay off when an expert averages half a tile of rows; below that, padding would cost more than
     * reading the weights once per few rows. */
    const uint64_t slots = (uint64_t)m * top_k, groups = slots < experts ? slots : experts;
    if (!groups) return 1;
    return slots / groups >= FP8K_MOE_TILE_M / 2 ? FP8K_MOE_TILE_M : 1;
}
