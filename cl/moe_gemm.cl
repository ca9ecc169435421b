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
inline float acc_round(acct a) { return a.x + a.y; }
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
 * Decode: one work-group per (active expert, GU output units); GL lanes of each unit split K in 16-element
 * chunks and keep GR rows' float-float sums; the lanes' sums are added in lane order in local memory.
 * ---------------------------------------------------------------------------------------------- */
#define GL FP8K_MOE_GEMV_LANES
#define GU FP8K_MOE_GEMV_UNITS
#ifdef MOE_GEMV_ROWS
#define GR MOE_GEMV_ROWS /* a build for plans of one row per expert (one token) */
#else
#define GR FP8K_MOE_GEMV_ROWS
#endif

kernel __attribute__((reqd_work_group_size(GL * GU, 1, 1)))
void fp8_moe_gemv(global const uchar *W, global const uchar *WS, global const uchar *TS, global const uchar *B,
                  global const uchar *X, global const uchar *XS, global uchar *Y, global uint *P,
                  volatile global int *err, const fp8k_moe_gemm_params p)
{
    local acct red[GU * GR * 2 * GL];
    const uint lid = get_local_id(0), lane = lid % GL, slot = lid / GL;
    const uint unit = get_group_id(0) * GU + slot;
    global uint *w = P + p.plan.base;
    uint e = 0, r0 = 0, r1 = p.plan.m;
    if (!p.dense) {
        /* Every group checks what it reads: a plan is caller memory. */
        if (!moe_header_ok(w, &p.plan)) {
            if (lid == 0) moe_raise(err, FP8K_ERR_INVALID_ARGUMENT);
            return;
        }
        const uint a = get_group_id(1);
        if (a >= w[FP8K_MOE_H_ACTIVE]) return;
        e = w[p.plan.active + a];
        if (e >= p.plan.experts) {
            if (lid == 0) moe_plan_raise(err, w);
            return;
        }
        r0 = w[p.plan.offsets + e];
        r1 = w[p.plan.offsets + e + 1];
        if (r0 > r1 || r1 > w[FP8K_MOE_H_TOTAL_ROWS]) {
            if (lid == 0) moe_plan_raise(err, w);
            return;
        }
        if (e < p.e_lo || e >= p.e_hi) return; /* another launch's buffer of experts */
    }
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
