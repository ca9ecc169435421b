/* GEMV for small M: GEMV_G work-items share one weight row n and stream it once in 16-byte chunks, each
 * work-item keeping MT partial dot products (one per activation row) in registers; the G partials of a row
 * are then summed (warp shuffles on NVIDIA, sub-group reductions where cl_khr_subgroups is there, local
 * memory elsewhere). Built per weight dtype WDT, activation dtype XDT and row block MT (-D options). */

#ifndef GEMV_G
#define GEMV_G 32
#endif
#ifndef GEMV_RPW
#define GEMV_RPW 4
#endif
#define GEMV_LWS (GEMV_G * GEMV_RPW)

/* Elements per chunk: 16 bytes of E2M1 hold 32, everything else is read 16 elements at a time. */
#if WDT == FP8K_E2M1
#define CE 32
#else
#define CE 16
#endif

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

/* One chunk of the weight row: CE decoded weights, per-element scales applied in GENERIC mode. */
inline void w_chunk(global const uchar *wrow, global const uchar *ws, const fp8k_gemm_params *p, uint n, uint c,
                    float *w)
{
    const uint k0 = c * CE, K = p->k;
#if WDT == FP8K_E2M1
    if (k0 + CE <= K) {
        global const uchar *q = wrow + (ulong)c * 16;
        const uint4 u = (p->flags & FP8K_W_ALIGNED) ? *(global const uint4 *)q : as_uint4(vload16(0, q));
        fp8k_decode_nibbles16(u.xy, w);
        fp8k_decode_nibbles16(u.zw, w + 16);
    } else {
        fp8k_row16(wrow, k0, K, WDT, p->flags & FP8K_W_ALIGNED, w);
        fp8k_row16(wrow, k0 + 16, K, WDT, p->flags & FP8K_W_ALIGNED, w + 16);
    }
#else
    fp8k_row16(wrow, k0, K, WDT, p->flags & FP8K_W_ALIGNED, w);
#endif
    if (p->ws.mode == FP8K_SCALE_GENERIC) {
#pragma unroll
        for (uint i = 0; i < CE; i++) w[i] *= k0 + i < K ? fp8k_scale_at(ws, &p->ws, n, k0 + i) : 0.0f;
    }
}

inline void gemv(global const uchar *W, global const uchar *X, global uchar *Y, global const uchar *WS,
                 global const uchar *XS, global const uchar *B, const fp8k_gemm_params *p, local float *red)
{
    const uint lid = get_local_id(0);
    const uint lane = lid % GEMV_G, slot = lid / GEMV_G;
    const uint n = get_group_id(0) * GEMV_RPW + slot;
    const uint m0 = get_group_id(1) * MT;
    const uint K = p->k;
    global const uchar *ws = WS + p->ws.offset;
    global const uchar *xs = XS + p->xs.offset;
    global const uchar *x0 = X + p->x_off;
    const uint xal = p->flags & FP8K_X_ALIGNED;

    float acc[MT];
#pragma unroll
    for (int m = 0; m < MT; m++) acc[m] = 0.0f;

    if (n < p->n) {
        global const uchar *wrow = W + p->w_off + (ulong)n * p->w_stride;
        const uint nchunks = (K + CE - 1) / CE;
        for (uint c = lane; c < nchunks; c += GEMV_G) {
            float w[CE];
            w_chunk(wrow, ws, p, n, c, w);
#pragma unroll
            for (uint s = 0; s < CE / 16; s++) {
                const uint ks = c * CE + 16 * s;
                if (ks >= K) break;
                const float sw = p->ws.mode == FP8K_SCALE_K16 ? fp8k_scale_at(ws, &p->ws, n, ks) : 1.0f;
#pragma unroll
                for (int m = 0; m < MT; m++) {
                    if (m0 + m >= p->m) break;
                    float x[16];
                    fp8k_row16(x0 + (ulong)(m0 + m) * p->x_stride, ks, K, XDT, xal, x);
                    float sx = 1.0f;
                    if (p->xs.mode == FP8K_SCALE_GENERIC) {
#pragma unroll
                        for (uint i = 0; i < 16; i++)
                            x[i] *= ks + i < K ? fp8k_scale_at(xs, &p->xs, m0 + m, ks + i) : 0.0f;
                    } else if (p->xs.mode == FP8K_SCALE_K16) {
                        sx = fp8k_scale_at(xs, &p->xs, m0 + m, ks);
                    }
                    float d = 0.0f;
#pragma unroll
                    for (int i = 0; i < 16; i++) d = fma(x[i], w[16 * s + i], d);
                    acc[m] = fma(d, sw * sx, acc[m]);
                }
            }
        }
    }

    global uchar *y = Y + p->y_off;
    global const uchar *b = B + p->b_off;
#ifdef FP8K_PTX
    (void)red;
    float out = 0.0f;
#pragma unroll
    for (int m = 0; m < MT; m++) {
        const float t = warp_sum(acc[m]);
        if (lane == (uint)m) out = t;
    }
    if (lane < MT && n < p->n && m0 + lane < p->m) fp8k_epilogue(y, ws, xs, b, p, m0 + lane, n, out);
#else
#ifdef FP8K_SUBGROUPS
    if (get_sub_group_size() == GEMV_G && get_max_sub_group_size() == GEMV_G) {
        float out = 0.0f;
#pragma unroll
        for (int m = 0; m < MT; m++) {
            const float t = sub_group_reduce_add(acc[m]);
            if (lane == (uint)m) out = t;
        }
        if (lane < MT && n < p->n && m0 + lane < p->m) fp8k_epilogue(y, ws, xs, b, p, m0 + lane, n, out);
        return;
    }
#endif
    /* Row stride GEMV_LWS + 1 keeps the column reads below on distinct banks. */
#pragma unroll
    for (int m = 0; m < MT; m++) red[m * (GEMV_LWS + 1) + lid] = acc[m];
    barrier(CLK_LOCAL_MEM_FENCE);
    if (lane < MT && n < p->n && m0 + lane < p->m) {
        local const float *r = red + lane * (GEMV_LWS + 1) + slot * GEMV_G;
        float t = 0.0f;
        for (int j = 0; j < GEMV_G; j++) t += r[j];
        fp8k_epilogue(y, ws, xs, b, p, m0 + lane, n, t);
    }
#endif
}

kernel __attribute__((reqd_work_group_size(GEMV_LWS, 1, 1)))
void fp8_gemv(global const uchar *W, global const uchar *X, global uchar *Y, global const uchar *WS,
              global const uchar *XS, global const uchar *B, const fp8k_gemm_params p)
{
    local float red[MT * (GEMV_LWS + 1)];
    gemv(W, X, Y, WS, XS, B, &p, red);
}
