/* GEMV for small M: each warp of 32 work-items owns one weight row n; lane l walks chunks l, l + 32, ... of
 * it (32 bytes of FP8 or 16 of E2M1 each), so that the warp's loads cover 1 KiB of the row contiguously, with
 * MT activation rows in registers. The lanes' partial sums meet once per pass in local memory (OpenCL 1.2 has
 * no subgroup sums). The work-group's warps take neighbouring rows and share the activations through the
 * caches; M above MT runs as passes over the same rows. (Until this layout, each work-item owned a row and a
 * warp's loads touched 32 rows at once: 13-22% of the copy bandwidth on the H100 at M = 1.) Built per weight
 * dtype WDT, activation dtype XDT, register block MT, row alignment WAL/XAL and SPOW2 (-D options); rows per
 * work-group = work-group size / 32. */

#define LANES 32

/* Elements per chunk of one row: 32 (32 bytes of FP8, 16 of E2M1). Float weights (the fp32 baseline) take 16
 * elements per step through the generic row reader. */
#if WDT == FP8K_F32 || WDT == FP8K_F16 || WDT == FP8K_BF16
#define CE 16
#define CB 0
#elif WDT == FP8K_E2M1
#define CE 32
#define CB 16
#else
#define CE 32
#define CB 32
#endif
#define SUBS (CE / 16)

/* Sub-chunk s (16 elements from ks) of a chunk: from the loaded bytes when the chunk is whole, else read with
 * bounds checks at the end of the row; GENERIC scales applied per element. */
inline void w_sub16(global const uchar *wrow, const uint4 *raw, bool full, uint s, uint ks, uint n,
                    global const uchar *ws, const fp8k_gemm_params *p, float *w)
{
#if CB == 16
    if (full) fp8k_decode_nibbles16(s ? raw[0].zw : raw[0].xy, w);
    else fp8k_row16(wrow, ks, p->k, WDT, WAL, w);
#elif CB == 32
    if (full) fp8k_decode_bytes16(raw[s], WDT, w);
    else fp8k_row16(wrow, ks, p->k, WDT, WAL, w);
#else
    (void)raw; (void)full; (void)s;
    fp8k_row16(wrow, ks, p->k, WDT, WAL, w);
#endif
    if (p->ws.mode == FP8K_SCALE_GENERIC) {
#pragma unroll
        for (uint i = 0; i < 16; i++) w[i] *= ks + i < p->k ? fp8k_scale_at(ws, &p->ws, n, ks + i) : 0.0f;
    }
}

/* The 32 bytes of chunk c of a row, when the chunk is whole (a partial last chunk is read per element). */
inline void load_chunk(global const uchar *wrow, uint c, uint K, bool live, uint4 *raw)
{
#if CB != 0
    if (live && (c + 1) * CE <= K) {
        global const uchar *q = wrow + (ulong)c * CB;
#if WAL
        raw[0] = ((global const uint4 *)q)[0];
        if (CB == 32) raw[1] = ((global const uint4 *)q)[1];
#else
        raw[0] = as_uint4(vload16(0, q));
        if (CB == 32) raw[1] = as_uint4(vload16(1, q));
#endif
    }
#else
    (void)wrow; (void)c; (void)K; (void)live; (void)raw;
#endif
}

kernel void fp8_gemv(global const uchar *W, global const uchar *X, global uchar *Y, global const uchar *WS,
                     global const uchar *XS, global const uchar *B, const fp8k_gemm_params p, local float *red)
{
    const uint lid = get_local_id(0), lane = lid % LANES, warp = lid / LANES;
    const uint n = get_group_id(0) * (get_local_size(0) / LANES) + warp;
    const bool live = n < p.n;
    const uint K = p.k;
    global const uchar *ws = WS + p.ws.offset;
    global const uchar *xs = XS + p.xs.offset;
    global const uchar *x0 = X + p.x_off;
    global const uchar *wrow = W + p.w_off + (ulong)(live ? n : 0) * p.w_stride;
    const uint nchunks = (K + CE - 1) / CE;

    for (uint m0 = 0; m0 < p.m; m0 += MT) {
        float acc[MT];
#pragma unroll
        for (int m = 0; m < MT; m++) acc[m] = 0.0f;

        /* The next chunk's bytes are requested before this chunk is decoded, to keep loads in flight. */
        uint4 raw[2] = {(uint4)(0u), (uint4)(0u)};
        if (lane < nchunks) load_chunk(wrow, lane, K, live, raw);
        for (uint c = lane; c < nchunks; c += LANES) {
            const bool full = (c + 1) * CE <= K;
            uint4 cur[2] = {raw[0], raw[1]};
            if (c + LANES < nchunks) load_chunk(wrow, c + LANES, K, live, raw);
#pragma unroll
            for (uint s = 0; s < SUBS; s++) {
                /* Sub-chunks and activation rows past the end are computed on clamped indices and dropped:
                 * no early exits, so the loops unroll and acc stays in registers. */
                const uint ks = c * CE + 16 * s;
                const bool kv = ks < K;
                float w[16];
                w_sub16(wrow, cur, full && live, s, kv ? ks : 0, live ? n : 0, ws, &p, w);
                const float sw = p.ws.mode == FP8K_SCALE_K16 && live ? fp8k_scale_at(ws, &p.ws, n, kv ? ks : 0) : 1.0f;
#pragma unroll
                for (int m = 0; m < MT; m++) {
                    const uint row = m0 + m < p.m ? m0 + m : m0;
                    float x[16];
                    fp8k_row16(x0 + (ulong)row * p.x_stride, kv ? ks : K, K, XDT, XAL, x);
                    float sx = 1.0f;
                    if (p.xs.mode == FP8K_SCALE_GENERIC) {
#pragma unroll
                        for (uint i = 0; i < 16; i++)
                            x[i] *= ks + i < K ? fp8k_scale_at(xs, &p.xs, row, ks + i) : 0.0f;
                    } else if (p.xs.mode == FP8K_SCALE_K16) {
                        sx = fp8k_scale_at(xs, &p.xs, row, kv ? ks : 0);
                    }
                    float d = 0.0f;
#pragma unroll
                    for (int i = 0; i < 16; i++) d = fma(x[i], w[i], d);
                    acc[m] = kv ? fma(d, sw * sx, acc[m]) : acc[m]; /* a select: w may hold NaN codes */
                }
            }
        }

        /* Sum each warp's lanes: red[warp][m][lane]; then lane m of the warp adds row m's 32 partial sums. */
        barrier(CLK_LOCAL_MEM_FENCE); /* the previous pass's reads of red are done */
#pragma unroll
        for (int m = 0; m < MT; m++) red[(warp * MT + m) * LANES + lane] = acc[m];
        barrier(CLK_LOCAL_MEM_FENCE);
        if (lane < MT && live && m0 + lane < p.m) {
            float v = 0.0f;
            for (uint l = 0; l < LANES; l++) v += red[(warp * MT + lane) * LANES + l];
            fp8k_epilogue(Y + p.y_off, ws, xs, B + p.b_off, &p, m0 + lane, n, v);
        }
    }
}
