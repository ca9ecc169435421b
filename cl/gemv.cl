/* GEMV for small M: GEMV_G work-items share a group of GEMV_R weight rows and stream them once in 16-byte
 * chunks, each work-item keeping GEMV_R x MT partial dot products in registers (an activation run loaded
 * once serves GEMV_R rows); the GEMV_G partials of an output are then summed (warp shuffles on NVIDIA,
 * sub-group reductions where cl_khr_subgroups is there, local memory elsewhere). Built per weight dtype WDT,
 * activation dtype XDT, activation rows per launch MT and weight rows per work-item GEMV_R (-D options). */

#ifndef GEMV_G
#define GEMV_G 32
#endif
#ifndef GEMV_RPW
#define GEMV_RPW 4
#endif
#ifndef GEMV_R
#define GEMV_R 2
#endif
#define GEMV_LWS (GEMV_G * GEMV_RPW)
#define GEMV_OUT (GEMV_R * MT) /* outputs per row group */

/* Elements per 16-byte chunk: 32 for E2M1, 16 for FP8. Float weights (the fp32 baseline) read 16 elements
 * per chunk straight from memory. */
#if WDT == FP8K_E2M1
#define CE 32
#else
#define CE 16
#endif
#define PACKED (WDT != FP8K_F32 && WDT != FP8K_F16 && WDT != FP8K_BF16)

#if defined(FP8K_SUBGROUPS) && !defined(FP8K_PTX)
#pragma OPENCL EXTENSION cl_khr_subgroups : enable
#endif

#ifdef FP8K_PTX
/* Butterfly sum across the 32 lanes of a warp; every lane ends with the total. */
inline float warp_sum(float v)
{
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) {
        float t;
        asm volatile("shfl.sync.bfly.b32 %0, %1, %2, 0x1f, 0xffffffff;" : "=f"(t) : "f"(v), "r"(o));
        v += t;
    }
    return v;
}
#endif

/* The 16 weights [ks, ks + 16) of row n: decoded from the chunk already loaded (`full`) or read with bounds
 * checks at the end of the row; per-element scales applied in GENERIC mode. */
inline void w_sub16(global const uchar *wrow, uint4 raw, bool full, uint s, uint ks, uint n, global const uchar *ws,
                    const fp8k_gemm_params *p, float *w)
{
#if WDT == FP8K_E2M1
    if (full) fp8k_decode_nibbles16(s ? raw.zw : raw.xy, w);
    else fp8k_row16(wrow, ks, p->k, WDT, p->flags & FP8K_W_ALIGNED, w);
#elif PACKED
    (void)s;
    if (full) fp8k_decode_bytes16(raw, WDT, w);
    else fp8k_row16(wrow, ks, p->k, WDT, p->flags & FP8K_W_ALIGNED, w);
#else
    (void)raw; (void)full; (void)s;
    fp8k_row16(wrow, ks, p->k, WDT, p->flags & FP8K_W_ALIGNED, w);
#endif
    if (p->ws.mode == FP8K_SCALE_GENERIC) {
#pragma unroll
        for (uint i = 0; i < 16; i++) w[i] *= ks + i < p->k ? fp8k_scale_at(ws, &p->ws, n, ks + i) : 0.0f;
    }
}

inline void gemv(global const uchar *W, global const uchar *X, global uchar *Y, global const uchar *WS,
                 global const uchar *XS, global const uchar *B, const fp8k_gemm_params *p, local float *red)
{
    const uint lid = get_local_id(0);
    const uint lane = lid % GEMV_G, slot = lid / GEMV_G;
    const uint n0 = (get_group_id(0) * GEMV_RPW + slot) * GEMV_R;
    const uint m0 = get_group_id(1) * MT;
    const uint K = p->k;
    global const uchar *ws = WS + p->ws.offset;
    global const uchar *xs = XS + p->xs.offset;
    global const uchar *x0 = X + p->x_off;
    const uint xal = p->flags & FP8K_X_ALIGNED;
    /* rows of this group that exist (0 for a group past N: it still joins the reduction) */
    const uint rows = n0 < p->n ? min((uint)GEMV_R, p->n - n0) : 0u;

    float acc[GEMV_R][MT];
#pragma unroll
    for (int r = 0; r < GEMV_R; r++)
#pragma unroll
        for (int m = 0; m < MT; m++) acc[r][m] = 0.0f;

    const uint nchunks = (K + CE - 1) / CE;
    for (uint c = rows ? lane : nchunks; c < nchunks; c += GEMV_G) {
        const bool full = (c + 1) * CE <= K;
        uint4 raw[GEMV_R];
#pragma unroll
        for (int r = 0; r < GEMV_R; r++) {
            raw[r] = (uint4)(0u);
#if PACKED
            if (full && (uint)r < rows) {
                global const uchar *q = W + p->w_off + (ulong)(n0 + r) * p->w_stride + (ulong)c * 16;
                raw[r] = (p->flags & FP8K_W_ALIGNED) ? *(global const uint4 *)q : as_uint4(vload16(0, q));
            }
#endif
        }
#pragma unroll
        for (uint s = 0; s < CE / 16; s++) {
            const uint ks = c * CE + 16 * s;
            if (ks >= K) break;
            float w[GEMV_R][16], sw[GEMV_R];
#pragma unroll
            for (int r = 0; r < GEMV_R; r++) {
                const uint n = (uint)r < rows ? n0 + r : n0; /* a missing row computes row n0 again, unused */
                w_sub16(W + p->w_off + (ulong)n * p->w_stride, raw[r], full, s, ks, n, ws, p, w[r]);
                sw[r] = p->ws.mode == FP8K_SCALE_K16 ? fp8k_scale_at(ws, &p->ws, n, ks) : 1.0f;
            }
#pragma unroll
            for (int m = 0; m < MT; m++) {
                if (m0 + m >= p->m) break;
                float x[16];
                fp8k_row16(x0 + (ulong)(m0 + m) * p->x_stride, ks, K, XDT, xal, x);
                float sx = 1.0f;
                if (p->xs.mode == FP8K_SCALE_GENERIC) {
#pragma unroll
                    for (uint i = 0; i < 16; i++) x[i] *= ks + i < K ? fp8k_scale_at(xs, &p->xs, m0 + m, ks + i) : 0.0f;
                } else if (p->xs.mode == FP8K_SCALE_K16) {
                    sx = fp8k_scale_at(xs, &p->xs, m0 + m, ks);
                }
#pragma unroll
                for (int r = 0; r < GEMV_R; r++) {
                    float d = 0.0f;
#pragma unroll
                    for (int i = 0; i < 16; i++) d = fma(x[i], w[r][i], d);
                    acc[r][m] = fma(d, sw[r] * sx, acc[r][m]);
                }
            }
        }
    }

    global uchar *y = Y + p->y_off;
    global const uchar *b = B + p->b_off;
    /* Output j = r * MT + m of the group is written by lane j % GEMV_G. */
#if defined(FP8K_PTX)
    (void)red;
#pragma unroll
    for (int r = 0; r < GEMV_R; r++)
#pragma unroll
        for (int m = 0; m < MT; m++) {
            const float t = warp_sum(acc[r][m]);
            if (lane == (uint)((r * MT + m) % GEMV_G) && (uint)r < rows && m0 + m < p->m)
                fp8k_epilogue(y, ws, xs, b, p, m0 + m, n0 + r, t);
        }
#else
#ifdef FP8K_SUBGROUPS
    if (get_sub_group_size() == GEMV_G && get_max_sub_group_size() == GEMV_G) {
#pragma unroll
        for (int r = 0; r < GEMV_R; r++)
#pragma unroll
            for (int m = 0; m < MT; m++) {
                const float t = sub_group_reduce_add(acc[r][m]);
                if (lane == (uint)((r * MT + m) % GEMV_G) && (uint)r < rows && m0 + m < p->m)
                    fp8k_epilogue(y, ws, xs, b, p, m0 + m, n0 + r, t);
            }
        return;
    }
#endif
    /* Row stride GEMV_LWS + 1 keeps the column reads below on distinct banks. */
#pragma unroll
    for (int r = 0; r < GEMV_R; r++)
#pragma unroll
        for (int m = 0; m < MT; m++) red[(r * MT + m) * (GEMV_LWS + 1) + lid] = acc[r][m];
    barrier(CLK_LOCAL_MEM_FENCE);
    for (uint j = lane; j < GEMV_OUT; j += GEMV_G) {
        const uint r = j / MT, m = j % MT;
        if (r < rows && m0 + m < p->m) {
            local const float *v = red + j * (GEMV_LWS + 1) + slot * GEMV_G;
            float t = 0.0f;
            for (int i = 0; i < GEMV_G; i++) t += v[i];
            fp8k_epilogue(y, ws, xs, b, p, m0 + m, n0 + r, t);
        }
    }
#endif
}

kernel __attribute__((reqd_work_group_size(GEMV_LWS, 1, 1)))
void fp8_gemv(global const uchar *W, global const uchar *X, global uchar *Y, global const uchar *WS,
              global const uchar *XS, global const uchar *B, const fp8k_gemm_params p)
{
#ifdef FP8K_PTX
    gemv(W, X, Y, WS, XS, B, &p, 0);
#else
    local float red[GEMV_OUT * (GEMV_LWS + 1)];
    gemv(W, X, Y, WS, XS, B, &p, red);
#endif
}
