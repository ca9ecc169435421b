/* GEMV for small M. Each warp of 32 work-items owns NR neighbouring weight rows; lane l streams 16-byte loads
 * l, l + 32, ... of each of them (16 FP8 weights, 32 E2M1, 8 halves or 4 floats per load), U loads per row
 * issued before the first is used. A load is decoded four weights at a time against a float4 of each of the MT
 * activation rows held in the pass, so each activation load serves NR rows and each decoded weight MT tokens:
 * per weight the kernel spends a few integer operations and 1/NR of an activation load, which on the H100 is
 * what bounds it (an earlier layout, one row per warp, 32 bytes per lane, decoded 16 at a time with a branch
 * for special codes, reached 20-30% of the copy bandwidth at M = 1; the old one-row-per-work-item layout 13-22%).
 * The lanes' partial sums meet in local memory (OpenCL 1.2 has no subgroup sums), or through warp shuffles
 * where NVIDIA's inline PTX runs (FP8K_PTX). M above MT runs as passes over
 * the same rows. Built per weight dtype WDT, activation dtype XDT, MT, NR, U, row alignment WAL/XAL, SPOW2
 * WGEN/XGEN and the scale modes WSM/XSM (-D options); rows per work-group = NR * work-group size / 32. */

#define LANES 32
/* Warps that share each group of NR rows, each taking every KS-th run of LANES * U loads along K; their sums
 * meet in local memory. More warps per row where rows are few and long (a GEMV of 4096 rows at one token has
 * only 1024 warps of four rows otherwise: under eight per SM on the H100). */
#ifndef KS
#define KS 1
#endif

/* Weights per 16-byte load (EPL), and per scale step (SUB: a K16 scale is constant over 16 weights). */
#if WDT == FP8K_E2M1
#define EPL 32
#elif WDT == FP8K_F16 || WDT == FP8K_BF16
#define EPL 8
#elif WDT == FP8K_F32
#define EPL 4
#else
#define EPL 16
#endif
#define SUB (EPL < 16 ? EPL : 16)
/* WSM/XSM: the weight / activation scale mode (FP8K_SCALE_*) where the host compiles it in; else it is read
 * at run time, and WGEN/XGEN say whether GENERIC (per-element) scale code enters the inner loop at all. */
#ifndef WGEN
#define WGEN 1
#endif
#ifndef XGEN
#define XGEN 1
#endif
#ifdef WSM
#define W_MODE WSM
#else
#define W_MODE p.ws.mode
#endif
#ifdef XSM
#define X_MODE XSM
#else
#define X_MODE p.xs.mode
#endif
#define NACC (MT * NR)

#ifdef FP8K_PTX
/* A float through the warp shuffle of decode.cl. */
inline float shfl_xor_f(float v, uint o) { return as_float(fp8k_shfl_xor(as_uint(v), o)); }
/* Sums per round of the warp reduction below (a power of two: MT and NR are). */
#define RSUMS (NACC < LANES ? NACC : LANES)
#endif

/* Weights 4g .. 4g+3 of a 16-byte load q. */
inline float4 w4(uint4 q, uint g)
{
    const uint wd[4] = {q.x, q.y, q.z, q.w};
#if WDT == FP8K_E2M1
    return fp8k_dec4_e2m1(wd[g >> 1] >> (16 * (g & 1)));
#elif WDT == FP8K_F16 || WDT == FP8K_BF16
    return fp8k_dec4_halves((uint2)(wd[2 * g], wd[2 * g + 1]), WDT);
#elif WDT == FP8K_F32
    (void)g;
    return as_float4(q);
#else
    return fp8k_dec4(wd[g], WDT);
#endif
}

kernel void fp8_gemv(global const uchar *W, global const uchar *X, global uchar *Y, global const uchar *WS,
                     global const uchar *XS, global const uchar *B, const fp8k_gemm_params p, local float *red)
{
    const uint lid = get_local_id(0), lane = lid % LANES, warp = lid / LANES;
#if KS > 1
    const uint kpart = warp % KS; /* this warp's share of K; warp / KS is its row group in the work-group */
    const uint rowbase = (get_group_id(0) * (get_local_size(0) / (LANES * KS)) + warp / KS) * NR;
#define K_FIRST (kpart * LANES * U)
#define K_STEP (LANES * U * KS)
#define TAIL_HERE kpart == 0 &&
#else /* the source as it was before KS: one warp per row group */
    const uint rowbase = (get_group_id(0) * (get_local_size(0) / LANES) + warp) * NR;
#define K_FIRST 0
#define K_STEP (LANES * U)
#define TAIL_HERE
#endif
    const uint K = p.k, nloads = K / EPL;
    global const uchar *ws = WS + p.ws.offset;
    global const uchar *xs = XS + p.xs.offset;
    /* Rows past the end compute on the last row and are not stored. */
    uint rn[NR];
    global const uchar *wr[NR];
#pragma unroll
    for (int r = 0; r < NR; r++) {
        rn[r] = min(rowbase + r, p.n - 1);
        wr[r] = W + p.w_off + (ulong)rn[r] * p.w_stride;
    }

    for (uint m0 = 0; m0 < p.m; m0 += MT) {
        uint tm[MT];
        global const uchar *xr[MT];
#pragma unroll
        for (int t = 0; t < MT; t++) {
            tm[t] = min(m0 + t, p.m - 1); /* tokens past the end likewise */
            xr[t] = X + p.x_off + (ulong)tm[t] * p.x_stride;
        }
        float acc[NACC];
#pragma unroll
        for (int i = 0; i < NACC; i++) acc[i] = 0.0f;

        for (uint c0 = K_FIRST + lane; c0 < nloads; c0 += K_STEP) {
            uint4 q[U * NR];
#pragma unroll
            for (int u = 0; u < U; u++) {
                const uint c = min(c0 + LANES * u, nloads - 1); /* past the end: a load inside, unused */
#pragma unroll
                for (int r = 0; r < NR; r++) q[u * NR + r] = FP8K_WLOAD16(wr[r], c, WAL);
            }
#pragma unroll
            for (int u = 0; u < U; u++) {
                const bool live = c0 + LANES * u < nloads;
                const uint c = live ? c0 + LANES * u : 0;
#pragma unroll
                for (int s = 0; s < EPL / SUB; s++) {
                    const uint k0 = c * EPL + s * SUB;
                    /* Scales constant over the sub-chunk; GENERIC ones are applied per element below. */
                    float sw[NR], sx[MT];
#pragma unroll
                    for (int r = 0; r < NR; r++) sw[r] = W_MODE == FP8K_SCALE_K16 ? fp8k_scale_at(ws, &p.ws, rn[r], k0) : 1.0f;
#pragma unroll
                    for (int t = 0; t < MT; t++) sx[t] = X_MODE == FP8K_SCALE_K16 ? fp8k_scale_at(xs, &p.xs, tm[t], k0) : 1.0f;
                    float d[NACC];
#pragma unroll
                    for (int i = 0; i < NACC; i++) d[i] = 0.0f;
#pragma unroll
                    for (int g = 0; g < SUB / 4; g++) {
                        const uint k = k0 + 4 * g;
                        float4 xv[MT];
#pragma unroll
                        for (int t = 0; t < MT; t++) {
                            xv[t] = fp8k_x4(xr[t], k, XDT, XAL);
                            if (XGEN && X_MODE == FP8K_SCALE_GENERIC) xv[t] *= fp8k_scale4(xs, &p.xs, tm[t], k);
                        }
#pragma unroll
                        for (int r = 0; r < NR; r++) {
                            float4 wv = w4(q[u * NR + r], s * (SUB / 4) + g);
                            if (WGEN && W_MODE == FP8K_SCALE_GENERIC) wv *= fp8k_scale4(ws, &p.ws, rn[r], k);
#pragma unroll
                            for (int t = 0; t < MT; t++) d[t * NR + r] += dot(wv, xv[t]);
                        }
                    }
                    /* a select, not a branch: the unused load may hold NaN codes */
#pragma unroll
                    for (int t = 0; t < MT; t++)
#pragma unroll
                        for (int r = 0; r < NR; r++)
                            acc[t * NR + r] = live ? fma(d[t * NR + r], sw[r] * sx[t], acc[t * NR + r]) : acc[t * NR + r];
                }
            }
        }

        /* The last K % EPL elements, one per lane, with every scale applied per element. */
        for (uint k = nloads * EPL + lane; TAIL_HERE k < K; k += LANES) {
#pragma unroll
            for (int r = 0; r < NR; r++) {
                float w = fp8k_load(wr[r], k, WDT);
                if (W_MODE != FP8K_SCALE_ROWCONST) w *= fp8k_scale_at(ws, &p.ws, rn[r], k);
#pragma unroll
                for (int t = 0; t < MT; t++) {
                    float x = fp8k_load(xr[t], k, XDT);
                    if (X_MODE != FP8K_SCALE_ROWCONST) x *= fp8k_scale_at(xs, &p.xs, tm[t], k);
                    acc[t * NR + r] = fma(w, x, acc[t * NR + r]);
                }
            }
        }

#ifdef FP8K_PTX
#if KS > 1
        barrier(CLK_LOCAL_MEM_FENCE); /* the previous pass's reads of red are done */
#endif
        /* RSUMS sums at a time, by recursive halving: at each step (lane offsets 16, 8, ...) a lane keeps half of
         * its values, adds its partner's copy of that half and hands over the other half. After RSUMS - 1 shuffles
         * each lane holds one of the sums over RSUMS lanes; a butterfly over the remaining offsets completes it
         * over the warp, and the first lane of each group of 32 / RSUMS stores it (a shuffle per sum and step,
         * the plain butterfly, cost 5 * RSUMS). */
#pragma unroll
        for (int c0 = 0; c0 < NACC; c0 += RSUMS) {
            float v[RSUMS];
#pragma unroll
            for (int j = 0; j < RSUMS; j++) v[j] = acc[c0 + j];
            uint idx = 0; /* which of the RSUMS sums this lane holds */
#pragma unroll
            for (uint n = RSUMS, o = LANES / 2; n > 1; n /= 2, o /= 2) {
                const bool up = (lane & o) != 0;
#pragma unroll
                for (uint j = 0; j < n / 2; j++) {
                    const float send = up ? v[j] : v[j + n / 2], keep = up ? v[j + n / 2] : v[j];
                    v[j] = keep + shfl_xor_f(send, o);
                }
                idx += up ? n / 2 : 0;
            }
            float sum = v[0];
#pragma unroll
            for (uint o = LANES / RSUMS / 2; o > 0; o /= 2) sum += shfl_xor_f(sum, o);
            const uint i = c0 + idx, t = i / NR, r = i % NR;
#if KS > 1
            if ((lane & (LANES / RSUMS - 1)) == 0) red[warp * NACC + i] = sum;
#else
            if ((lane & (LANES / RSUMS - 1)) == 0 && rowbase + r < p.n && m0 + t < p.m)
                fp8k_epilogue(Y + p.y_off, ws, xs, B + p.b_off, &p, m0 + t, rowbase + r, sum);
#endif
        }
#if KS > 1
        /* The first warp of each row group adds its KS warps' sums, in order of kpart. */
        barrier(CLK_LOCAL_MEM_FENCE);
        for (uint i = lane; kpart == 0 && i < NACC; i += LANES) {
            const uint t = i / NR, r = i % NR;
            float v = 0.0f;
            for (uint kp = 0; kp < KS; kp++) v += red[(warp + kp) * NACC + i];
            if (rowbase + r < p.n && m0 + t < p.m) fp8k_epilogue(Y + p.y_off, ws, xs, B + p.b_off, &p, m0 + t, rowbase + r, v);
        }
#endif
#else
        /* Each warp's lanes: red[warp][i][lane], then lane i of the warp (i < NACC, in rounds of 32) adds up sum i. */
        barrier(CLK_LOCAL_MEM_FENCE); /* the previous pass's reads of red are done */
#pragma unroll
        for (int i = 0; i < NACC; i++) red[(warp * NACC + i) * LANES + lane] = acc[i];
        barrier(CLK_LOCAL_MEM_FENCE);
#if KS > 1
        for (uint i = lane; kpart == 0 && i < NACC; i += LANES) {
            const uint t = i / NR, r = i % NR;
            float v = 0.0f;
            for (uint kp = 0; kp < KS; kp++)
                for (uint l = 0; l < LANES; l++) v += red[((warp + kp) * NACC + i) * LANES + l];
#else
        for (uint i = lane; i < NACC; i += LANES) {
            const uint t = i / NR, r = i % NR;
            float v = 0.0f;
            for (uint l = 0; l < LANES; l++) v += red[(warp * NACC + i) * LANES + l];
#endif
            if (rowbase + r < p.n && m0 + t < p.m) fp8k_epilogue(Y + p.y_off, ws, xs, B + p.b_off, &p, m0 + t, rowbase + r, v);
        }
#endif
    }
}
