/* Tiled GEMM: a work-group computes a BM x BN block of Y. Each step over K decodes a BN x BK weight tile and a
 * BM x BK activation tile (scales that vary along K applied) into local memory as fp32, then every work-item
 * accumulates its TM x TN outputs with fp32 FMAs. Built per weight dtype WDT, activation dtype XDT, tile shape,
 * row alignment WAL/XAL and SPOW2 (-D options). Edges are bounds-checked, so global sizes are rounded up to
 * whole tiles. */

#ifndef BM
#define BM 64
#endif
#ifndef BN
#define BN 64
#endif
#ifndef BK
#define BK 16
#endif
#ifndef TM
#define TM 4
#endif
#ifndef TN
#define TN 4
#endif
#define TX (BN / TN)
#define TY (BM / TM)
#define NT (TX * TY)
#define SUBS (BK / 16) /* 16-element runs per tile row */

/* 16 elements [k, k+16) of row r of a scaled operand, scaled where the scale varies along K, zero outside
 * rows x K. */
inline void tile_run(global const uchar *base, ulong stride, uint r, uint rows, uint k, uint K, uint dt,
                     uint aligned, global const uchar *sbase, const fp8k_scale *sc, float *v)
{
    if (r >= rows) {
#pragma unroll
        for (int i = 0; i < 16; i++) v[i] = 0.0f;
        return;
    }
    fp8k_row16(base + (ulong)r * stride, k, K, dt, aligned, v);
    if (sc->mode == FP8K_SCALE_K16) {
        const float s = k < K ? fp8k_scale_at(sbase, sc, r, k) : 0.0f;
#pragma unroll
        for (int i = 0; i < 16; i++) v[i] *= s;
    } else if (sc->mode == FP8K_SCALE_GENERIC) {
#pragma unroll
        for (uint i = 0; i < 16; i++) v[i] *= k + i < K ? fp8k_scale_at(sbase, sc, r, k + i) : 0.0f;
    }
}

/* Work-items of a 32-wide warp cover 8 columns x 4 rows of the work-group's TX x TY grid: reading a k-row of
 * the tiles then touches 8 distinct B runs and 4 distinct A runs per warp instead of 16 and 2, a quarter of
 * the local-memory traffic of a 16 x 2 warp. Other shapes fall back to row-major work-items. */
#if TX % 8 == 0 && TY % 4 == 0 && NT % 32 == 0
#define WARP_TILED 1
#endif
/* float4 reads of the register tiles need runs of 4 and 16-byte aligned tile rows. */
#if TM % 4 == 0 && TN % 4 == 0
#define VEC4 1
#define PAD 4
#else
#define PAD 1
#endif

kernel __attribute__((reqd_work_group_size(NT, 1, 1)))
void fp8_gemm_tiled(global const uchar *W, global const uchar *X, global uchar *Y, global const uchar *WS,
                    global const uchar *XS, global const uchar *B, const fp8k_gemm_params p)
{
    /* k-major tiles; rows 16-byte aligned for the float4 reads */
    local float As[BK][BM + PAD] __attribute__((aligned(16)));
    local float Bs[BK][BN + PAD] __attribute__((aligned(16)));
    const uint tid = get_local_id(0);
#ifdef WARP_TILED
    const uint warp = tid / 32, lane = tid % 32;
    const uint tx = (warp % (TX / 8)) * 8 + lane % 8, ty = (warp / (TX / 8)) * 4 + lane / 8;
#else
    const uint tx = tid % TX, ty = tid / TX;
#endif
    const uint n0 = get_group_id(0) * BN, m0 = get_group_id(1) * BM;
    const uint K = p.k;
    global const uchar *w0 = W + p.w_off;
    global const uchar *x0 = X + p.x_off;
    global const uchar *ws = WS + p.ws.offset;
    global const uchar *xs = XS + p.xs.offset;

    float acc[TM][TN];
#pragma unroll
    for (int i = 0; i < TM; i++)
#pragma unroll
        for (int j = 0; j < TN; j++) acc[i][j] = 0.0f;

    for (uint kt = 0; kt < K; kt += BK) {
        for (uint s = tid; s < BN * SUBS; s += NT) {
            const uint r = s / SUBS, kc = (s % SUBS) * 16;
            float v[16];
            tile_run(w0, p.w_stride, n0 + r, p.n, kt + kc, K, WDT, WAL, ws, &p.ws, v);
#pragma unroll
            for (int i = 0; i < 16; i++) Bs[kc + i][r] = v[i];
        }
        for (uint s = tid; s < BM * SUBS; s += NT) {
            const uint r = s / SUBS, kc = (s % SUBS) * 16;
            float v[16];
            tile_run(x0, p.x_stride, m0 + r, p.m, kt + kc, K, XDT, XAL, xs, &p.xs, v);
#pragma unroll
            for (int i = 0; i < 16; i++) As[kc + i][r] = v[i];
        }
        barrier(CLK_LOCAL_MEM_FENCE);
        /* Work-item (tx, ty) owns rows ty*TM.. and columns tx*TN.. of the block. */
#pragma unroll 4
        for (int kk = 0; kk < BK; kk++) {
            float a[TM], b[TN];
#ifdef VEC4
#pragma unroll
            for (int i = 0; i < TM; i += 4) {
                const float4 t = *(local const float4 *)&As[kk][ty * TM + i];
                a[i] = t.x; a[i + 1] = t.y; a[i + 2] = t.z; a[i + 3] = t.w;
            }
#pragma unroll
            for (int j = 0; j < TN; j += 4) {
                const float4 t = *(local const float4 *)&Bs[kk][tx * TN + j];
                b[j] = t.x; b[j + 1] = t.y; b[j + 2] = t.z; b[j + 3] = t.w;
            }
#else
#pragma unroll
            for (int i = 0; i < TM; i++) a[i] = As[kk][ty * TM + i];
#pragma unroll
            for (int j = 0; j < TN; j++) b[j] = Bs[kk][tx * TN + j];
#endif
#pragma unroll
            for (int i = 0; i < TM; i++)
#pragma unroll
                for (int j = 0; j < TN; j++) acc[i][j] = fma(a[i], b[j], acc[i][j]);
        }
        barrier(CLK_LOCAL_MEM_FENCE);
    }

    global uchar *y = Y + p.y_off;
    global const uchar *b = B + p.b_off;
#pragma unroll
    for (int i = 0; i < TM; i++) {
        const uint m = m0 + ty * TM + i;
#pragma unroll
        for (int j = 0; j < TN; j++) {
            const uint n = n0 + tx * TN + j;
            if (m < p.m && n < p.n) fp8k_epilogue(y, ws, xs, b, &p, m, n, acc[i][j]);
        }
    }
}
