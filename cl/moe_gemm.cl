/* MoE grouped GEMM over a plan, one launch for every expert: a GEMV-style kernel for decode plans (each active
 * expert's weights streamed once for up to FP8K_MOE_GEMV_ROWS rows) and a local-memory tile kernel for prefill
 * plans (tile_expert drives 32-row tiles that reuse each weight across the tile). Built per weight dtype WDT
 * and activation dtype XDT (-D options); MOE_FP64 computes the epilogue's activation in double.
 *
 * Accuracy. Plain f32 accumulation loses ~sqrt(K) ulps of the partial sums, which shows next to the double
 * oracle wherever a sum cancels, so the sums carry more than f32 (the accumulator type acct):
 *   default       float-float: every product's and every addition's rounding error is kept in a second float
 *                 (Ogita-Rump-Oishi Dot2), about 10 f32 operations per multiply-add, on any device;
 *   MOE_ACC_F64   double (one fma per multiply-add; the tiles are staged in local memory as double), for
 *                 devices whose fp64 runs at half the f32 rate (NVIDIA data-centre GPUs);
 *   MOE_F32_ACC   plain f32 fma, for measurements only.
 * Scales constant over 16 elements of K multiply each 16-element chunk's sum; row-constant scales and the bias
 * are applied once, before the sum is rounded to f32. */

#pragma OPENCL FP_CONTRACT OFF

#ifdef MOE_FP64
#pragma OPENCL EXTENSION cl_khr_fp64 : enable
typedef double et;
#define EC(x) (x)
#else
typedef float et;
#define EC(x) (x##f)
#endif

#ifdef MOE_ACC_F64
typedef double acct;
typedef double tilet; /* the tiles' element type in local memory */
#define ACC_ZERO 0.0
inline acct acc_dot(acct acc, float a, float b) { return fma((double)a, (double)b, acc); }
inline acct acc_dot_t(acct acc, tilet a, tilet b) { return fma(a, b, acc); }
inline acct acc_add(acct a, acct b) { return a + b; }
inline acct acc_mul(acct a, float f) { return a * (double)f; }
inline acct acc_add_f(acct a, float b) { return a + (double)b; }
inline float acc_round(acct a) { return (float)a; }
#else
typedef float2 acct; /* x: the sum; y: the rounding errors gathered along the way */
typedef float tilet;
#define ACC_ZERO ((float2)(0.0f, 0.0f))
inline acct acc_dot(acct acc, float a, float b)
{
#ifdef MOE_F32_ACC
    return (float2)(fma(a, b, acc.x), acc.y);
#else
    const float p = a * b, pe = fma(a, b, -p);
    const float s = acc.x + p, z = s - acc.x;
    return (float2)(s, acc.y + (((acc.x - (s - z)) + (p - z)) + pe));
#endif
}
inline acct acc_dot_t(acct acc, tilet a, tilet b) { return acc_dot(acc, a, b); }
inline acct acc_add(acct acc, acct v)
{
    const float s = acc.x + v.x, z = s - acc.x;
    return (float2)(s, acc.y + (((acc.x - (s - z)) + (v.x - z)) + v.y));
}
inline acct acc_mul(acct v, float f)
{
    const float p = v.x * f;
    return (float2)(p, fma(v.x, f, -p) + v.y * f);
}
inline acct acc_add_f(acct a, float b) { return acc_add(a, (float2)(b, 0.0f)); }
/* x carries the plain sum: where it is Inf or NaN the rounding errors are NaN (Inf - Inf), and x is the answer. */
inline float acc_round(acct a) { return isfinite(a.x) ? a.x + a.y : a.x; }
#endif

inline void moe_raise(volatile global int *word, int status) { atomic_cmpxchg(word, 0, status); }

/* A bad plan index: the device word and the plan's status word. */
inline void moe_plan_raise(volatile global int *err, global uint *plan)
{
    moe_raise(err, FP8K_ERR_INVALID_ARGUMENT);
    moe_raise((volatile global int *)(plan + FP8K_MOE_H_STATUS), FP8K_ERR_INVALID_ARGUMENT);
}

inline bool moe_header_ok(global const uint *h, const fp8k_moe_plan *pl)
{
    return h[FP8K_MOE_H_MAGIC] == FP8K_MOE_MAGIC && h[FP8K_MOE_H_M] == pl->m && h[FP8K_MOE_H_TOP_K] == pl->top_k &&
           h[FP8K_MOE_H_EXPERTS] == pl->experts && h[FP8K_MOE_H_ROW_ALIGN] == pl->row_align &&
           h[FP8K_MOE_H_ROWS] == pl->rows && h[FP8K_MOE_H_TOTAL_ROWS] <= pl->rows;
}

/* Weights [k0, k0 + 16) of weight row n (of the expert at wexp), decoded, zero past K; per-element scales
 * (GENERIC layouts) applied. */
inline void moe_w16(global const uchar *wexp, global const uchar *wsexp, const fp8k_moe_gemm_params *p, uint n, uint k0,
                    float *w)
{
    fp8k_row16(wexp + (ulong)n * p->w_stride, k0, p->k, WDT, p->flags & FP8K_W_ALIGNED, w);
    if (p->ws.mode == FP8K_SCALE_GENERIC) {
#pragma unroll
        for (uint i = 0; i < 16; i++) w[i] *= k0 + i < p->k ? fp8k_scale_at(wsexp, &p->ws, n, k0 + i) : 0.0f;
    }
}

/* Activations [k0, k0 + 16) of X row `src`, likewise. */
inline void moe_x16(global const uchar *x0, global const uchar *xsb, const fp8k_moe_gemm_params *p, uint src, uint k0,
                    float *x)
{
    fp8k_row16(x0 + (ulong)src * p->x_stride, k0, p->k, XDT, p->flags & FP8K_X_ALIGNED, x);
    if (p->xs.mode == FP8K_SCALE_GENERIC) {
#pragma unroll
        for (uint i = 0; i < 16; i++) x[i] *= k0 + i < p->k ? fp8k_scale_at(xsb, &p->xs, src, k0 + i) : 0.0f;
    }
}

/* A 16-element chunk's sum times the scales that are constant over it (1 in the other modes). */
inline acct moe_fold(acct ch, const fp8k_moe_gemm_params *p, float sw, float sx)
{
    if (p->ws.mode == FP8K_SCALE_K16) ch = acc_mul(ch, sw);
    if (p->xs.mode == FP8K_SCALE_K16) ch = acc_mul(ch, sx);
    return ch;
}

inline et moe_act(uint act, et v)
{
    switch (act) {
    case FP8K_ACT_SWIGLU: case FP8K_ACT_SILU: return v / (EC(1.0) + exp(-v));
    /* erfc keeps its relative accuracy where 1 + erf would cancel (large negative v) */
    case FP8K_ACT_GEGLU: case FP8K_ACT_GELU: return EC(0.5) * v * erfc(-v * EC(0.70710678118654752));
    case FP8K_ACT_GEGLU_TANH: case FP8K_ACT_GELU_TANH: {
        /* x/2 (1 + tanh z) = x / (1 + exp(-2z)), without the cancellation */
        const et z = EC(0.79788456080286536) * (v + EC(0.044715) * v * v * v);
        return v / (EC(1.0) + exp(EC(-2.0) * z));
    }
    default: return v;
    }
}

/* Weight row n's accumulated dot product with X row src, times the row-constant and tensor scales, plus the
 * expert's bias, rounded once to f32. */
inline float moe_finish(acct v, global const uchar *wsexp, global const uchar *xsb, global const uchar *B,
                        const fp8k_moe_gemm_params *p, uint e, uint n, uint src, float ts)
{
    if (p->ws.mode == FP8K_SCALE_ROWCONST && p->ws.dtype) v = acc_mul(v, fp8k_scale_at(wsexp, &p->ws, n, 0));
    if (p->xs.mode == FP8K_SCALE_ROWCONST && p->xs.dtype) v = acc_mul(v, fp8k_scale_at(xsb, &p->xs, src, 0));
    if (p->ws.tensor != 1.0f) v = acc_mul(v, p->ws.tensor);
    if (p->xs.tensor != 1.0f) v = acc_mul(v, p->xs.tensor);
    if (ts != 1.0f) v = acc_mul(v, ts);
    if (p->b_dtype) v = acc_add_f(v, fp8k_load(B + p->b_off, (ulong)e * p->b_stride + n, p->b_dtype));
    return acc_round(v);
}

/* The output columns of one unit of plan row r: the epilogue, or zeros for a padding row. */
inline void moe_store_unit(global uchar *Y, global const uchar *B, const fp8k_moe_gemm_params *p, uint e, uint r,
                           uint unit, uint na, uint nb, bool has_b, bool live, uint src, acct g, acct u,
                           global const uchar *wsexp, global const uchar *xsb, float ts)
{
    global uchar *y = Y + p->y_off;
    const ulong yr = (ulong)r * p->y_stride;
    const bool gated = p->n_out != p->n;
    if (!live) {
        if (gated) {
            fp8k_store(y, yr + unit, p->y_dtype, 0.0f);
        } else {
            fp8k_store(y, yr + na, p->y_dtype, 0.0f);
            if (has_b) fp8k_store(y, yr + nb, p->y_dtype, 0.0f);
        }
        return;
    }
    const float gv = moe_finish(g, wsexp, xsb, B, p, e, na, src, ts);
    const float uv = has_b ? moe_finish(u, wsexp, xsb, B, p, e, nb, src, ts) : 0.0f;
    if (gated) {
        fp8k_store(y, yr + unit, p->y_dtype, (float)(moe_act(p->act, (et)gv) * (et)uv));
    } else {
        fp8k_store(y, yr + na, p->y_dtype, (float)moe_act(p->act, (et)gv));
        if (has_b) fp8k_store(y, yr + nb, p->y_dtype, (float)moe_act(p->act, (et)uv));
    }
}

/* The weight rows of an output unit; has_b is false for the last unit of an odd, not gated N. */
inline void moe_unit_rows(const fp8k_moe_gemm_params *p, uint unit, uint *na, uint *nb, bool *has_b)
{
    const bool gated = p->n_out != p->n;
    *na = gated ? unit : 2u * unit;
    const uint b = gated ? p->n_out + unit : 2u * unit + 1u;
    *has_b = b < p->n;
    *nb = *has_b ? b : *na;
}

/* Plan row r's X row, or false for padding (row_token NONE) and for a bad token (raised). */
inline bool moe_source(global uint *w, volatile global int *err, const fp8k_moe_gemm_params *p, uint r, uint *src,
                       bool raise)
{
    const uint tok = p->dense ? r : w[p->plan.row_token + r];
    if (tok == FP8K_MOE_NONE) return false;
    if (p->gathered && tok >= p->plan.m) {
        if (raise) moe_plan_raise(err, w);
        return false;
    }
    *src = p->gathered ? tok : r;
    return true;
}

/* ------------------------------------------------------------------------------------------------
 * Decode plans: GR plan rows per pass, so that an expert with up to GR rows reads its weights once.
 * ---------------------------------------------------------------------------------------------- */
#ifdef MOE_GEMV_ROWS
#define GR MOE_GEMV_ROWS /* a build for plans of one row per expert (one token) */
#else
#define GR FP8K_MOE_GEMV_ROWS
#endif

/* The expert of this decode work-group (group row get_group_id(1) of the active list) and its plan rows
 * [r0, r1); a dense call: expert 0, rows [0, m). Every index is checked before use (a plan is caller memory;
 * lane 0 raises what is wrong). False: nothing for this group (also an expert of another launch's weights). */
inline bool moe_gemv_rows(global uint *w, volatile global int *err, const fp8k_moe_gemm_params *p, uint lid, uint *e,
                          uint *r0, uint *r1)
{
    *e = 0;
    *r0 = 0;
    *r1 = p->plan.m;
    if (p->dense) return true;
    if (!moe_header_ok(w, &p->plan)) {
        if (lid == 0) moe_raise(err, FP8K_ERR_INVALID_ARGUMENT);
        return false;
    }
    const uint a = get_group_id(1);
    if (a >= w[FP8K_MOE_H_ACTIVE]) return false;
    *e = w[p->plan.active + a];
    if (*e >= p->plan.experts) {
        if (lid == 0) moe_plan_raise(err, w);
        return false;
    }
    *r0 = w[p->plan.offsets + *e];
    *r1 = w[p->plan.offsets + *e + 1];
    if (*r0 > *r1 || *r1 > w[FP8K_MOE_H_TOTAL_ROWS]) {
        if (lid == 0) moe_plan_raise(err, w);
        return false;
    }
    return *e >= p->e_lo && *e < p->e_hi; /* else another launch's buffer of experts */
}

#ifdef MOE_GEMV_OLD
/* ------------------------------------------------------------------------------------------------
 * Decode, the previous kernel (MOE_GEMV_OLD; FP8_CL_MOE_GEMV=old selects it, for comparisons): one work-group
 * per (active expert, GU output units); GL lanes of each unit split K in 16-element chunks and keep GR rows'
 * sums; the lanes' sums are added in lane order in local memory.
 * ---------------------------------------------------------------------------------------------- */
#define GL FP8K_MOE_GEMV_LANES
#define GU FP8K_MOE_GEMV_UNITS

kernel __attribute__((reqd_work_group_size(GL * GU, 1, 1)))
void fp8_moe_gemv(global const uchar *W, global const uchar *WS, global const uchar *TS, global const uchar *B,
                  global const uchar *X, global const uchar *XS, global uchar *Y, global uint *P,
                  volatile global int *err, const fp8k_moe_gemm_params p)
{
    local acct red[GU * GR * 2 * GL];
    const uint lid = get_local_id(0), lane = lid % GL, slot = lid / GL;
    const uint unit = get_group_id(0) * GU + slot;
    global uint *w = P + p.plan.base;
    uint e, r0, r1;
    if (!moe_gemv_rows(w, err, &p, lid, &e, &r0, &r1)) return;
    const bool has_a = unit < p.units;
    uint na = 0, nb = 0;
    bool has_b = false;
    if (has_a) moe_unit_rows(&p, unit, &na, &nb, &has_b);
    global const uchar *wexp = W + p.w_off + (ulong)(e - p.e_lo) * p.w_estride;
    global const uchar *wsexp = WS + p.ws.offset + (ulong)e * p.ws_estride;
    global const uchar *xsb = XS + p.xs.offset;
    global const uchar *x0 = X + p.x_off;
    const float ts = p.has_ts ? ((global const float *)(TS + p.ts_off))[e] : 1.0f;
    const uint nchunks = (p.k + 15u) / 16u;

    for (uint rb = r0; rb < r1; rb += GR) {
        const uint nr = min((uint)GR, r1 - rb);
        uint src[GR];
        bool live[GR];
#pragma unroll
        for (uint i = 0; i < GR; i++) {
            src[i] = 0;
            live[i] = i < nr && moe_source(w, err, &p, rb + i, &src[i], lid == 0);
        }
        acct acc[GR][2];
#pragma unroll
        for (uint i = 0; i < GR; i++) acc[i][0] = acc[i][1] = ACC_ZERO;
        for (uint c = has_a ? lane : nchunks; c < nchunks; c += GL) {
            const uint k0 = c * 16u;
            float wa[16], wb[16];
            moe_w16(wexp, wsexp, &p, na, k0, wa);
            if (has_b) moe_w16(wexp, wsexp, &p, nb, k0, wb);
            const bool k16 = p.ws.mode == FP8K_SCALE_K16;
            const float swa = k16 ? fp8k_scale_at(wsexp, &p.ws, na, k0) : 1.0f;
            const float swb = k16 && has_b ? fp8k_scale_at(wsexp, &p.ws, nb, k0) : 1.0f;
#pragma unroll
            for (uint i = 0; i < GR; i++) {
                if (!live[i]) continue;
                float x[16];
                moe_x16(x0, xsb, &p, src[i], k0, x);
                const float sx = p.xs.mode == FP8K_SCALE_K16 ? fp8k_scale_at(xsb, &p.xs, src[i], k0) : 1.0f;
                acct ca = ACC_ZERO, cb = ACC_ZERO;
#pragma unroll
                for (uint j = 0; j < 16; j++) ca = acc_dot(ca, wa[j], x[j]);
                acc[i][0] = acc_add(acc[i][0], moe_fold(ca, &p, swa, sx));
                if (has_b) {
#pragma unroll
                    for (uint j = 0; j < 16; j++) cb = acc_dot(cb, wb[j], x[j]);
                    acc[i][1] = acc_add(acc[i][1], moe_fold(cb, &p, swb, sx));
                }
            }
        }
#pragma unroll
        for (uint i = 0; i < GR; i++) {
            red[((slot * GR + i) * 2 + 0) * GL + lane] = acc[i][0];
            red[((slot * GR + i) * 2 + 1) * GL + lane] = acc[i][1];
        }
        barrier(CLK_LOCAL_MEM_FENCE);
        if (has_a && lane < nr) {
            const uint i = lane;
            acct g = ACC_ZERO, u = ACC_ZERO;
            local const acct *rg = red + ((slot * GR + i) * 2 + 0) * GL, *ru = red + ((slot * GR + i) * 2 + 1) * GL;
            for (uint l = 0; l < GL; l++) {
                g = acc_add(g, rg[l]);
                u = acc_add(u, ru[l]);
            }
            moe_store_unit(Y, B, &p, e, rb + i, unit, na, nb, has_b, live[i], src[i], g, u, wsexp, xsb, ts);
        }
        barrier(CLK_LOCAL_MEM_FENCE);
    }
}

#else /* MOE_GEMV_OLD */
/* ------------------------------------------------------------------------------------------------
 * Decode, warp layout (the default). The previous kernel gave each output unit 32 lanes that split K in
 * 16-element chunks, decoded 16 weights and 16 activations per chunk into arrays, widened every weight and
 * activation to double for the sums, and found each chunk's scales through a run-time shift-or-divide.
 *
 * This one takes the dense GEMV's layout (cl/gemv.cl). One work-group per (active expert, NW * NU output
 * units); each warp of 32 work-items owns NU units, that is NR = 2 NU weight rows: for gated epilogues the gate
 * rows u .. u+NU-1 ([0, NU)) and the up rows n_out + u .. ([NU, NR)), otherwise rows 2u and 2u + 1 of each unit.
 * Lane l streams 16-byte loads l, l + 32, ... of every row along K (16 FP8 or 32 E2M1 weights each), the NR
 * loads of a step issued before the first is used, and decodes four weights at a time against a vector of each
 * plan row's activations, which the NR rows share. Scales constant over 16 weights (FP8K_SCALE_K16) are found
 * by a block index carried from one load to the next (no division in the loop) and multiply each 16 weights'
 * sum. The lanes' sums meet through warp shuffles (FP8K_PTX) or in local memory, in a fixed order: no atomics,
 * the same bits on every run.
 *
 * Double sums (MOE_ACC_F64) without conversions (MG_BITS; MOE_WBITS=1 from the host, where doubles keep their
 * subnormals): a conversion to or from double issues at a fraction of the f32 rate on NVIDIA GPUs, and the
 * previous kernel paid one to two per weight. Here a weight becomes a double by moving its sign, exponent and
 * mantissa bits into the high word (the low word is zero): the double is w * 2^-WB with WB fixed per format
 * (subnormal codes give double subnormals, exactly). The move gets NaN and Inf codes wrong: a NaN code makes
 * its 16 weights' sum NaN (a select), and E5M2 loads with an Inf code (or NaN) take an exact conversion instead
 * (a branch taken only for such loads). Activations are widened once per element for all NR rows and multiplied
 * by 2^512, so that every product (at most 28 significant bits) is exact and far from the double's range
 * limits; the sums are multiplied by 2^(WB - 512) after the K loop, which is exact too. Per-element (GENERIC)
 * scales multiply weights and activations in double, exactly (weights times 2^256 more, MG_GS, clear of the
 * subnormals); their products are then rounded once.
 *
 * MOE_GEMV_FAST (from the host): weight and activation rows start on 16 bytes and no scale varies per element;
 * the other build reads with vload and carries the per-element (GENERIC) scale code.
 * ---------------------------------------------------------------------------------------------- */
#ifdef MOE_NW
#define NW MOE_NW
#else
#define NW FP8K_MOE_GEMV_WARPS
#endif
#ifdef MOE_NU
#define NU MOE_NU
#else
#define NU FP8K_MOE_GEMV_WARP_UNITS
#endif
#define NR (2 * NU)
#define LANES 32
#ifndef MOE_GEMV_FAST
#define MOE_GEMV_FAST 0
#endif
/* Weights per 16-byte load (MoE weights are FP8 or E2M1). */
#define EPL (WDT == FP8K_E2M1 ? 32 : 16)

#if defined(MOE_ACC_F64) && defined(MOE_WBITS) && MOE_WBITS
#define MG_BITS 1
/* The move: the code's sign to bit 31 of the high word, its exponent and mantissa below bit 23 or 24 (MG_SHIFT,
 * MG_MASK); the double is then w * MG_WRAW; MG_DOM = 2^(WB - 512) undoes that and the activations' 2^512. */
#if WDT == FP8K_E4M3FN
#define MG_SHIFT 7
#define MG_MASK 0x80fe0000u
#define MG_WRAW 0x1p-1016
#define MG_DOM 0x1p504
#elif WDT == FP8K_E4M3FNUZ
#define MG_SHIFT 7
#define MG_MASK 0x80fe0000u
#define MG_WRAW 0x1p-1015
#define MG_DOM 0x1p503
#elif WDT == FP8K_E5M2
#define MG_SHIFT 6
#define MG_MASK 0x81fc0000u
#define MG_WRAW 0x1p-1008
#define MG_DOM 0x1p496
#elif WDT == FP8K_E5M2FNUZ
#define MG_SHIFT 6
#define MG_MASK 0x81fc0000u
#define MG_WRAW 0x1p-1007
#define MG_DOM 0x1p495
#else /* E2M1: 3 bits of magnitude below bit 22 */
#define MG_WRAW 0x1p-1022
#define MG_DOM 0x1p510
#endif
#define MG_XS 0x1p512 /* activations' factor */
#define MG_GS 0x1p256 /* per-element weight scales' factor: keeps w * 2^-WB * scale clear of the subnormals */
/* codes the move gets wrong: 1, NaN only (the sum of their 16 weights is NaN); 2, NaN and Inf (E5M2: the exact
 * conversion for their 16 weights) */
#define MG_SPECIALS (WDT == FP8K_E2M1 ? 0 : WDT == FP8K_E5M2 ? 2 : 1)
#else
#define MG_BITS 0
#define MG_SPECIALS 0
#endif

#ifdef MOE_ACC_F64
typedef double4 mvec; /* four decoded weights or activations, in the sums' precision */
#else
typedef float4 mvec;
#endif

/* Weights 4g .. 4g+3 of a 16-byte load q, as floats. */
inline float4 mg_w4f(uint4 q, uint g)
{
    const uint wd[4] = {q.x, q.y, q.z, q.w};
#if WDT == FP8K_E2M1
    return fp8k_dec4_e2m1(wd[g >> 1] >> (16 * (g & 1)));
#else
    return fp8k_dec4(wd[g], WDT);
#endif
}

#if MG_BITS
inline double mg_hi(uint hi) { return as_double(upsample(hi, 0u)); }

/* Weights 4g .. 4g+3 of q times MG_WRAW, from their bits (NaN and Inf codes wrong: see mg_special). */
inline double4 mg_w4bits(uint4 q, uint g)
{
    const uint wd[4] = {q.x, q.y, q.z, q.w};
    uint h[4];
#if WDT == FP8K_E2M1
    /* nibble j to bits 28..31, then sign to bit 31 and magnitude to bits 19..21 */
    const uint w = wd[g >> 1];
#pragma unroll
    for (uint t = 0; t < 4; t++) h[t] = (uint)((int)(w << (28u - 4u * (4u * (g & 1u) + t))) >> 9) & 0x80380000u;
#else
    /* byte t to bits 24..31, then sign to bit 31 and magnitude to bits 17..23 (E4M3) or 18..24 (E5M2) */
    const uint w = wd[g];
#pragma unroll
    for (uint t = 0; t < 4; t++) h[t] = (uint)((int)(w << (24u - 8u * t)) >> MG_SHIFT) & MG_MASK;
#endif
    return (double4)(mg_hi(h[0]), mg_hi(h[1]), mg_hi(h[2]), mg_hi(h[3]));
}
#endif

#if MG_SPECIALS
/* Whether q holds a code the bit move gets wrong (NaN; E5M2's Inf). */
inline bool mg_special(uint4 q)
{
    return !(fp8k_plain4(q.x, WDT) & fp8k_plain4(q.y, WDT) & fp8k_plain4(q.z, WDT) & fp8k_plain4(q.w, WDT));
}

/* The same values as mg_w4bits for ordinary codes, and NaN or Inf for the others: an exact conversion (E5M2). */
inline double4 mg_w4slow(uint4 q, uint g)
{
    const uint wd[4] = {q.x, q.y, q.z, q.w};
    const uint w = wd[g];
    return (double4)((double)fp8k_decode8(w & 0xffu, WDT), (double)fp8k_decode8((w >> 8) & 0xffu, WDT),
                     (double)fp8k_decode8((w >> 16) & 0xffu, WDT), (double)fp8k_decode8(w >> 24, WDT)) *
           MG_WRAW;
}
#endif

/* Weights 4g .. 4g+3 of q in the sums' precision and scaling. */
inline mvec mg_w4(uint4 q, uint g)
{
#if MG_BITS
    return mg_w4bits(q, g);
#elif defined(MOE_ACC_F64)
    return convert_double4(mg_w4f(q, g));
#else
    return mg_w4f(q, g);
#endif
}

/* Activations k .. k+3 of X row src in the sums' precision and scaling (per-element scales applied: exactly, in
 * double, or rounded to f32 as the float-float sums always did). */
inline mvec mg_x4(const fp8k_moe_gemm_params *p, global const uchar *x0, global const uchar *xsb, uint src, uint k)
{
    const float4 x = fp8k_x4(x0 + (ulong)src * p->x_stride, k, XDT, MOE_GEMV_FAST);
#ifdef MOE_ACC_F64
    double4 v = convert_double4(x);
#if !MOE_GEMV_FAST
    if (p->xs.mode == FP8K_SCALE_GENERIC) v *= convert_double4(fp8k_scale4(xsb, &p->xs, src, k));
#endif
#if MG_BITS
    v *= MG_XS;
#endif
    return v;
#else
    float4 v = x;
#if !MOE_GEMV_FAST
    if (p->xs.mode == FP8K_SCALE_GENERIC) v *= fp8k_scale4(xsb, &p->xs, src, k);
#endif
    return v;
#endif
}


#ifdef MOE_ACC_F64
inline acct mg_dot4(acct d, double4 w, double4 x)
{
    d = fma(w.x, x.x, d);
    d = fma(w.y, x.y, d);
    d = fma(w.z, x.z, d);
    return fma(w.w, x.w, d);
}
#else
inline acct mg_dot4(acct d, float4 w, float4 x)
{
    d = acc_dot(d, w.x, x.x);
    d = acc_dot(d, w.y, x.y);
    d = acc_dot(d, w.z, x.z);
    return acc_dot(d, w.w, x.w);
}
#endif

/* acc + d times the scales that are constant over d's 16 weights (1 in the other modes). */
inline acct mg_fold(const fp8k_moe_gemm_params *p, acct acc, acct d, float sw, float sx)
{
#ifdef MOE_ACC_F64
    return fma(d, (double)sw * (double)sx, acc); /* the scales' product is exact in double */
#else
    return acc_add(acc, moe_fold(d, p, sw, sx));
#endif
}

/* The sums d[i * NR + r] of plan row i (i < gr) and weight row r over the 16 weights of sub-chunk s of the loads
 * q, from element k0; slow: the exact conversion (E5M2 loads with NaN or Inf codes). */
inline void mg_chunk(const bool slow, const uint gr, const fp8k_moe_gemm_params *p, const uint4 *q,
                     const uint s, const uint k0, global const uchar *x0, global const uchar *xsb, const uint *src,
                     global const uchar *wsexp, const uint *rows, acct *d)
{
#pragma unroll
    for (uint i = 0; i < GR * NR; i++) d[i] = ACC_ZERO;
#pragma unroll
    for (uint g = 0; g < 4; g++) {
        const uint k = k0 + 4u * g;
        mvec xv[GR];
#pragma unroll
        for (uint i = 0; i < GR; i++)
            if (i < gr) xv[i] = mg_x4(p, x0, xsb, src[i], k);
#pragma unroll
        for (uint r = 0; r < NR; r++) {
#if MG_SPECIALS == 2
            mvec wv = slow ? mg_w4slow(q[r], 4u * s + g) : mg_w4(q[r], 4u * s + g);
#else
            mvec wv = mg_w4(q[r], 4u * s + g);
#endif
#if !MOE_GEMV_FAST
            if (p->ws.mode == FP8K_SCALE_GENERIC) {
#if MG_BITS
                wv *= convert_double4(fp8k_scale4(wsexp, &p->ws, rows[r], k)) * MG_GS;
#elif defined(MOE_ACC_F64)
                wv *= convert_double4(fp8k_scale4(wsexp, &p->ws, rows[r], k));
#else
                wv *= fp8k_scale4(wsexp, &p->ws, rows[r], k);
#endif
            }
#endif
#pragma unroll
            for (uint i = 0; i < GR; i++)
                if (i < gr) d[i * NR + r] = mg_dot4(d[i * NR + r], wv, xv[i]);
        }
    }
}

/* The sums of one load step: loads q of the NR rows at element c * EPL, whose K16 scale blocks start at wblk
 * (offset wrem into it) and xblk. */
inline void mg_step(const uint gr, const fp8k_moe_gemm_params *p, const uint4 *q, uint c, uint wblk,
                    uint wrem, uint wbc, const ulong *wsrow, uint xblk, uint xrem, uint xbc, const ulong *xsrow,
                    global const uchar *x0, global const uchar *xsb, const uint *src, global const uchar *wsexp,
                    const uint *rows, acct *acc)
{
    const bool wk16 = p->ws.mode == FP8K_SCALE_K16, xk16 = p->xs.mode == FP8K_SCALE_K16;
#if MG_SPECIALS == 1
    bool special[NR];
#pragma unroll
    for (uint r = 0; r < NR; r++) special[r] = mg_special(q[r]);
#elif MG_SPECIALS == 2
    bool special = false;
#pragma unroll
    for (uint r = 0; r < NR; r++) special |= mg_special(q[r]);
#endif
#pragma unroll
    for (uint s = 0; s < EPL / 16; s++) {
        const uint k0 = c * EPL + 16u * s;
        /* the K16 block of elements k0 .. k0+15: the load's, or the next one (16 <= block columns) */
        const uint wb = wblk + (wrem + 16u * s >= wbc ? 1u : 0u), xb = xblk + (xrem + 16u * s >= xbc ? 1u : 0u);
        float sw[NR], sx[GR];
#pragma unroll
        for (uint r = 0; r < NR; r++) sw[r] = wk16 ? fp8k_scale_idx(wsexp, p->ws.dtype, wsrow[r] + wb) : 1.0f;
#pragma unroll
        for (uint i = 0; i < GR; i++) sx[i] = i < gr && xk16 ? fp8k_scale_idx(xsb, p->xs.dtype, xsrow[i] + xb) : 1.0f;
        acct d[GR * NR];
        mg_chunk(false, gr, p, q, s, k0, x0, xsb, src, wsexp, rows, d);
#if MG_SPECIALS == 1
#pragma unroll
        for (uint i = 0; i < GR * NR; i++) d[i] = special[i % NR] ? (double)NAN : d[i];
#elif MG_SPECIALS == 2
        if (special) mg_chunk(true, gr, p, q, s, k0, x0, xsb, src, wsexp, rows, d);
#endif
#pragma unroll
        for (uint i = 0; i < GR; i++)
#pragma unroll
            for (uint r = 0; r < NR; r++)
                if (i < gr) acc[i * NR + r] = mg_fold(p, acc[i * NR + r], d[i * NR + r], sw[r], sx[i]);
    }
}

#ifdef FP8K_PTX
/* The sums through the warp shuffle of decode.cl, 32 bits at a time. */
#ifdef MOE_ACC_F64
inline acct mg_shfl(acct v, uint o)
{
    const uint2 u = as_uint2(v);
    return as_double((uint2)(fp8k_shfl_xor(u.x, o), fp8k_shfl_xor(u.y, o)));
}
#else
inline acct mg_shfl(acct v, uint o) { return as_float2((uint2)(fp8k_shfl_xor(as_uint(v.x), o), fp8k_shfl_xor(as_uint(v.y), o))); }
#endif
#endif

/* Unit `unit` of plan row r from its two sums (gate and up, or the unit's two rows): its weight rows and X row
 * found again (the pass's copies are per lane), then moe_store_unit. */
inline void mg_store(global uchar *Y, global const uchar *B, global uint *w, volatile global int *err,
                     const fp8k_moe_gemm_params *p, uint e, uint r, uint unit, acct g, acct u,
                     global const uchar *wsexp, global const uchar *xsb, float ts)
{
    uint na, nb, src = 0;
    bool has_b;
    moe_unit_rows(p, unit, &na, &nb, &has_b);
    const bool live = moe_source(w, err, p, r, &src, false);
    moe_store_unit(Y, B, p, e, r, unit, na, nb, has_b, live, src, g, u, wsexp, xsb, ts);
}

/* One pass over plan rows [rb, rb + nr) of expert e (nr <= gr; gr is GR, or 1 for a pass of one row) for the NR
 * weight rows of this work-item's warp: the sums, the lanes' reduction and the stores. */
inline void mg_pass(const uint gr, const fp8k_moe_gemm_params *p, global const uchar *W, global const uchar *WS,
                    global const uchar *B, global const uchar *X, global const uchar *XS, global uchar *Y,
                    global uint *w, volatile global int *err, uint e, uint rb, uint nr, uint ubase, float ts,
                    local acct *red)
{
    const uint lid = get_local_id(0), lane = lid % LANES;
    global const uchar *wexp = W + p->w_off + (ulong)(e - p->e_lo) * p->w_estride;
    global const uchar *wsexp = WS + p->ws.offset + (ulong)e * p->ws_estride;
    global const uchar *xsb = XS + p->xs.offset;
    global const uchar *x0 = X + p->x_off;
    const bool wk16 = p->ws.mode == FP8K_SCALE_K16, xk16 = p->xs.mode == FP8K_SCALE_K16;

    /* The warp's weight rows. Units past the end, and the missing second row of an odd N, compute on a valid
     * row and store nothing. */
    uint rows[NR];
    global const uchar *wr[NR];
    ulong wsrow[NR]; /* first index of the row's K16 scales */
#pragma unroll
    for (uint j = 0; j < NU; j++) {
        uint na = 0, nb = 0;
        bool has_b = false;
        if (ubase + j < p->units) moe_unit_rows(p, ubase + j, &na, &nb, &has_b);
        rows[j] = na;
        rows[NU + j] = nb;
    }
#pragma unroll
    for (uint r = 0; r < NR; r++) {
        wr[r] = wexp + (ulong)rows[r] * p->w_stride;
        wsrow[r] = wk16 ? (ulong)fp8k_block_of(rows[r], p->ws.block_rows, p->ws.rows_shift1) * p->ws.blocks_per_row : 0;
    }
    /* The pass's X rows. A padding row, a bad token and rows past nr read X row 0 (in range) and store nothing
     * but the zeros of a padding row. */
    uint src[GR];
    ulong xsrow[GR];
#pragma unroll
    for (uint i = 0; i < GR; i++) {
        src[i] = 0;
        if (i < gr && i < nr) moe_source(w, err, p, rb + i, &src[i], lid == 0);
        xsrow[i] = xk16 ? (ulong)fp8k_block_of(src[i], p->xs.block_rows, p->xs.rows_shift1) * p->xs.blocks_per_row : 0;
    }

    /* Block index and offset in it of this lane's first load, and the step from one load to its next (block
     * columns are a multiple of 16 in K16 mode; 1 stands in otherwise). */
    const uint wbc = wk16 ? p->ws.block_cols : 1u, xbc = xk16 ? p->xs.block_cols : 1u;
    uint wblk = lane * EPL / wbc, wrem = lane * EPL % wbc, xblk = lane * EPL / xbc, xrem = lane * EPL % xbc;
    const uint wq = LANES * EPL / wbc, wqr = LANES * EPL % wbc, xq = LANES * EPL / xbc, xqr = LANES * EPL % xbc;

    acct acc[GR * NR];
#pragma unroll
    for (uint i = 0; i < GR * NR; i++) acc[i] = ACC_ZERO;
    const uint nl = p->k / EPL; /* whole loads per row */
    uint c = lane;
    for (; c < nl; c += LANES) {
        uint4 q[NR];
#pragma unroll
        for (uint r = 0; r < NR; r++) q[r] = fp8k_load16(wr[r], c, MOE_GEMV_FAST);
        mg_step(gr, p, q, c, wblk, wrem, wbc, wsrow, xblk, xrem, xbc, xsrow, x0, xsb, src, wsexp, rows, acc);
        wrem += wqr;
        wblk += wq;
        if (wrem >= wbc) {
            wrem -= wbc;
            wblk++;
        }
        xrem += xqr;
        xblk += xq;
        if (xrem >= xbc) {
            xrem -= xbc;
            xblk++;
        }
    }
#if MG_BITS
    {
#if !MOE_GEMV_FAST
        const double dom = p->ws.mode == FP8K_SCALE_GENERIC ? MG_DOM / MG_GS : MG_DOM;
#else
        const double dom = MG_DOM;
#endif
#pragma unroll
        for (uint i = 0; i < GR * NR; i++) acc[i] *= dom;
    }
#endif
    /* The last K % EPL elements, on the lane whose turn it is, one at a time (a loop, so that this path, rare
     * in practice, does not raise the kernel's register count), every scale per element. */
    if (c == nl) {
        const bool wgen = p->ws.mode == FP8K_SCALE_GENERIC, xgen = p->xs.mode == FP8K_SCALE_GENERIC;
#pragma unroll 1
        for (uint k = nl * EPL; k < p->k; k++) {
            float xf[GR], sx[GR];
#pragma unroll
            for (uint i = 0; i < GR; i++) {
                if (i >= gr) continue;
                xf[i] = fp8k_load(x0 + (ulong)src[i] * p->x_stride, k, XDT);
                sx[i] = xgen || xk16 ? fp8k_scale_at(xsb, &p->xs, src[i], k) : 1.0f;
            }
#pragma unroll
            for (uint r = 0; r < NR; r++) {
                const float wf = fp8k_load(wr[r], k, WDT);
                const float sw = wgen || wk16 ? fp8k_scale_at(wsexp, &p->ws, rows[r], k) : 1.0f;
#pragma unroll
                for (uint i = 0; i < GR; i++) {
                    if (i >= gr) continue;
#ifdef MOE_ACC_F64
                    acc[i * NR + r] = fma((double)wf * (double)xf[i], (double)sw * (double)sx[i], acc[i * NR + r]);
#else
                    /* per-element scales rounded into the values, as in the loads above */
                    const float w1 = wgen ? wf * sw : wf, x1 = xgen ? xf[i] * sx[i] : xf[i];
                    acc[i * NR + r] = acc_add(acc[i * NR + r],
                                              moe_fold(acc_dot(ACC_ZERO, w1, x1), p, wgen ? 1.0f : sw, xgen ? 1.0f : sx[i]));
#endif
                }
            }
        }
    }

    /* The lanes' sums, and the stores: the lane that ends up with the sums of unit j's first row for plan row i
     * also gets its second row's and stores the unit. */
#ifdef FP8K_PTX
    /* Recursive halving (as cl/gemv.cl): at each step (lane offsets 16, 8, ...) a lane keeps half of its values,
     * adds its partner's copy of that half (the partner keeps the other half); after NS - 1 rounds lane l holds sum
     * idx over NS lanes, where bit b of idx is bit (b + 5 - log2 NS) of l. A butterfly over the remaining offsets
     * completes it over the warp; the partner row's sum (idx ^ NU) is NU * 32 / NS lanes away. */
    const uint NS = gr * NR; /* a power of two, at most 32 */
    acct v[GR * NR];
#pragma unroll
    for (uint i = 0; i < GR * NR; i++) v[i] = acc[i];
    uint idx = 0;
#pragma unroll
    for (uint n = NS, o = LANES / 2; n > 1; n /= 2, o /= 2) {
        const bool up = (lane & o) != 0;
#pragma unroll
        for (uint j = 0; j < n / 2; j++) {
            /* both halves cross and the lane picks a sum, not a value to send: a choice between two array
             * elements becomes a choice between their addresses, which keeps the array out of registers */
            const acct lo = v[j], hi = v[j + n / 2];
            const acct slo = acc_add(lo, mg_shfl(lo, o)), shi = acc_add(hi, mg_shfl(hi, o));
            v[j] = up ? shi : slo;
        }
        idx += up ? n / 2 : 0;
    }
    acct sum = v[0];
#pragma unroll
    for (uint o = LANES / NS / 2; o > 0; o /= 2) sum = acc_add(sum, mg_shfl(sum, o));
    const acct second = mg_shfl(sum, NU * LANES / NS);
    const uint i = idx / NR, j = idx % NR;
    (void)red;
    if ((lane & (LANES / NS - 1)) == 0 && j < NU && i < nr && ubase + j < p->units)
        mg_store(Y, B, w, err, p, e, rb + i, ubase + j, sum, second, wsexp, xsb, ts);
#else
    /* red[warp][sum][lane]; lane i * NU + j of the warp then adds up unit j's two sums for plan row i in lane
     * order. */
    local acct *rw = red + (lid / LANES) * (GR * NR * LANES);
    barrier(CLK_LOCAL_MEM_FENCE); /* the previous pass's reads are done */
#pragma unroll
    for (uint i = 0; i < GR * NR; i++)
        if (i < gr * NR) rw[i * LANES + lane] = acc[i];
    barrier(CLK_LOCAL_MEM_FENCE);
    if (lane < gr * NU) {
        const uint i = lane / NU, j = lane % NU;
        acct g = ACC_ZERO, u = ACC_ZERO;
        for (uint l = 0; l < LANES; l++) {
            g = acc_add(g, rw[(i * NR + j) * LANES + l]);
            u = acc_add(u, rw[(i * NR + NU + j) * LANES + l]);
        }
        if (i < nr && ubase + j < p->units) mg_store(Y, B, w, err, p, e, rb + i, ubase + j, g, u, wsexp, xsb, ts);
    }
#endif
}

kernel __attribute__((reqd_work_group_size(NW * LANES, 1, 1)))
void fp8_moe_gemv(global const uchar *W, global const uchar *WS, global const uchar *TS, global const uchar *B,
                  global const uchar *X, global const uchar *XS, global uchar *Y, global uint *P,
                  volatile global int *err, const fp8k_moe_gemm_params p)
{
#ifdef FP8K_PTX
    local acct *red = 0; /* the lanes meet in shuffles */
#else
    local acct red[NW * GR * NR * LANES];
#endif
    const uint lid = get_local_id(0);
    const uint ubase = (get_group_id(0) * NW + lid / LANES) * NU;
    global uint *w = P + p.plan.base;
    uint e, r0, r1;
    if (!moe_gemv_rows(w, err, &p, lid, &e, &r0, &r1)) return;
    const float ts = p.has_ts ? ((global const float *)(TS + p.ts_off))[e] : 1.0f;
    for (uint rb = r0; rb < r1; rb += GR) {
        const uint nr = min((uint)GR, r1 - rb);
#if GR > 1
        /* an expert's only (or last) row: the pass of one row, not GR rows' work */
        if (nr == 1) {
            mg_pass(1, &p, W, WS, B, X, XS, Y, w, err, e, rb, nr, ubase, ts, red);
            continue;
        }
#endif
        mg_pass(GR, &p, W, WS, B, X, XS, Y, w, err, e, rb, nr, ubase, ts, red);
    }
}
#endif /* MOE_GEMV_OLD */

/* ------------------------------------------------------------------------------------------------
 * Prefill: one work-group per (32-row block of a plan tile, 32 output units). Each k step stages 16 columns
 * of the block's X rows and of the units' weight rows in local memory; every work-item then owns 2 rows x
 * 2 units.
 * ---------------------------------------------------------------------------------------------- */
#define TT FP8K_MOE_TILE_T
#define TM FP8K_MOE_TILE_M
#define TU FP8K_MOE_TILE_U

kernel __attribute__((reqd_work_group_size(TT, TT, 1)))
void fp8_moe_tiled(global const uchar *W, global const uchar *WS, global const uchar *TS, global const uchar *B,
                   global const uchar *X, global const uchar *XS, global uchar *Y, global uint *P,
                   volatile global int *err, const fp8k_moe_gemm_params p)
{
    local tilet xt[TM][17];
    local tilet wt[2 * TU][17];
    local float xsc[TM], wsc[2 * TU];
    local uint srcs[TM];
    local int lives[TM];
    const uint tx = get_local_id(0), ty = get_local_id(1), li = ty * TT + tx;
    const uint ub = get_group_id(0), gy = get_group_id(1);
    global uint *w = P + p.plan.base;
    uint e = 0, rbeg, rend;
    if (p.dense) {
        rbeg = gy * TM;
        rend = min(rbeg + TM, p.plan.m);
    } else {
        if (!moe_header_ok(w, &p.plan)) {
            if (li == 0) moe_raise(err, FP8K_ERR_INVALID_ARGUMENT);
            return;
        }
        const uint t = gy / p.row_blocks, sb = gy % p.row_blocks, A = p.plan.row_align;
        e = w[p.plan.tile_expert + t];
        if (e == FP8K_MOE_NONE) return; /* at or past total_rows: not ours to write */
        const uint t0 = t * A, total = w[FP8K_MOE_H_TOTAL_ROWS];
        if (e >= p.plan.experts || t0 >= total || t0 < w[p.plan.offsets + e] || t0 >= w[p.plan.offsets + e + 1]) {
            if (li == 0) moe_plan_raise(err, w);
            return;
        }
        if (e < p.e_lo || e >= p.e_hi) return; /* another launch's buffer of experts */
        rbeg = t0 + sb * TM;
        rend = min(min(rbeg + TM, t0 + A), total);
        if (rbeg >= rend) return;
    }
    if (li < TM) {
        uint src = 0;
        const bool live = rbeg + li < rend && moe_source(w, err, &p, rbeg + li, &src, true);
        srcs[li] = src;
        lives[li] = live;
    }
    barrier(CLK_LOCAL_MEM_FENCE);

    global const uchar *wexp = W + p.w_off + (ulong)(e - p.e_lo) * p.w_estride;
    global const uchar *wsexp = WS + p.ws.offset + (ulong)e * p.ws_estride;
    global const uchar *xsb = XS + p.xs.offset;
    global const uchar *x0 = X + p.x_off;
    acct acc[2][2][2];
#pragma unroll
    for (uint i = 0; i < 2; i++)
#pragma unroll
        for (uint u = 0; u < 2; u++) acc[i][u][0] = acc[i][u][1] = ACC_ZERO;

    for (uint k0 = 0; k0 < p.k; k0 += 16u) {
        float v[16];
        if (li < TM) {
            float s = 1.0f;
            if (lives[li]) {
                moe_x16(x0, xsb, &p, srcs[li], k0, v);
                if (p.xs.mode == FP8K_SCALE_K16) s = fp8k_scale_at(xsb, &p.xs, srcs[li], k0);
            } else {
#pragma unroll
                for (uint j = 0; j < 16; j++) v[j] = 0.0f;
            }
            xsc[li] = s;
#pragma unroll
            for (uint j = 0; j < 16; j++) xt[li][j] = v[j];
        } else if (li < TM + 2 * TU) {
            const uint q = li - TM, unit = ub * TU + q / 2;
            float s = 1.0f;
            uint na, nb;
            bool has_b;
            moe_unit_rows(&p, unit, &na, &nb, &has_b);
            if (unit < p.units && (q % 2 == 0 || has_b)) {
                const uint n = q % 2 ? nb : na;
                moe_w16(wexp, wsexp, &p, n, k0, v);
                if (p.ws.mode == FP8K_SCALE_K16) s = fp8k_scale_at(wsexp, &p.ws, n, k0);
            } else {
#pragma unroll
                for (uint j = 0; j < 16; j++) v[j] = 0.0f;
            }
            wsc[q] = s;
#pragma unroll
            for (uint j = 0; j < 16; j++) wt[q][j] = v[j];
        }
        barrier(CLK_LOCAL_MEM_FENCE);
#pragma unroll
        for (uint i = 0; i < 2; i++) {
            const uint row = ty + i * TT;
            if (!lives[row]) continue;
            tilet xv[16];
#pragma unroll
            for (uint j = 0; j < 16; j++) xv[j] = xt[row][j];
            const float sx = xsc[row];
#pragma unroll
            for (uint u = 0; u < 2; u++) {
                const uint q0 = (tx + u * TT) * 2;
#pragma unroll
                for (uint h = 0; h < 2; h++) {
                    acct ch = ACC_ZERO;
#pragma unroll
                    for (uint j = 0; j < 16; j++) ch = acc_dot_t(ch, wt[q0 + h][j], xv[j]);
                    acc[i][u][h] = acc_add(acc[i][u][h], moe_fold(ch, &p, wsc[q0 + h], sx));
                }
            }
        }
        barrier(CLK_LOCAL_MEM_FENCE);
    }

    const float ts = p.has_ts ? ((global const float *)(TS + p.ts_off))[e] : 1.0f;
#pragma unroll
    for (uint i = 0; i < 2; i++) {
        const uint row = ty + i * TT;
        if (rbeg + row >= rend) continue;
#pragma unroll
        for (uint u = 0; u < 2; u++) {
            const uint unit = ub * TU + tx + u * TT;
            if (unit >= p.units) continue;
            uint na, nb;
            bool has_b;
            moe_unit_rows(&p, unit, &na, &nb, &has_b);
            moe_store_unit(Y, B, &p, e, rbeg + row, unit, na, nb, has_b, lives[row] != 0, srcs[row], acc[i][u][0],
                           acc[i][u][1], wsexp, xsb, ts);
        }
    }
}
