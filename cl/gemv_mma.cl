/* GEMV on NVIDIA's tensor cores through inline PTX, for devices with FP8K_PTX_FP8 (sm_89 and later, where the
 * device layer ran the FP8 conversion and checked its bits). One mma.sync m16n8k16 (f16 operands, f32 sums)
 * multiplies 16 weight rows by up to 8 tokens over 16 values of K. A weight costs half a cvt (two FP8 codes into
 * an f16 pair; E2M1 first becomes an E4M3 code of value / 64, a shift and a mask per four codes), and the
 * products and sums are the tensor core's. gemv.cl spends four to seven instructions per weight (decode, widen,
 * FMA), and each token costs it about as much again. Up to 8 tokens cost this kernel one pass over the weights.
 *
 * Fragments (PTX ISA, m16n8k16 with .f16 operands): lane l is in group g = l / 4 at place t = l % 4.
 *   A (16 x 16, row-major): a0 = (row g, k 2t, 2t+1), a1 = (row g+8, same k), a2 = (row g, k 2t+8, 2t+9),
 *                           a3 = (row g+8, same k); the lower k in the lower half of the register.
 *   B (16 x 8):             b0 = (k 2t, 2t+1; token g), b1 = (k 2t+8, 2t+9; token g).
 *   D (16 x 8, f32):        d0, d1 = (row g; tokens 2t, 2t+1), d2, d3 = (row g+8; tokens 2t, 2t+1).
 * The order of K inside a sum is free, so each lane feeds the mma from its own coalesced loads and reads the
 * activations in the same order:
 * - FP8: a segment is 64 bytes of a row. Lane t holds bytes 16t .. 16t+15 of rows g and g+8; mma i takes bytes
 *   16t+4i .. 16t+4i+3 (the first pair in a0/a1, the second in a2/a3), so its sum runs over the whole segment.
 * - E2M1: a segment is 64 bytes, four blocks of 32 elements. Lane t holds word t of each block (elements 8t ..
 *   8t+7), so that the two mmas of a block see that block alone and its scale can multiply their sum. A word's
 *   even elements go to a0/a1, its odd ones to a2/a3, and the activations are paired to match.
 * Built per WDT (E4M3FN, E5M2 or E2M1), RT (row tiles of 16 per warp), U (segments in flight per lane), KS
 * (warps sharing a row group; their sums meet in local memory), RG (row groups per work-group), WBLK (1: the
 * weight scale changes along K, at most once per segment (FP8) or block of 32 (E2M1), and multiplies the mma
 * sums; 0: it is constant along each row and the epilogue applies it), WMX (MXFP4's scales, E8M0 per 1 x 32 on
 * 4-byte boundaries: one 32-bit load per row and segment, in flight with the weights, instead of a lookup per
 * block), SEGRUN (1: the KS warps of a row group take contiguous runs of segments; 0: every KS-th segment) and
 * WLDG (FP8 weights through the read-only path, decode.cl). The host (gemv_mma_fits in lib/opencl/cl_gemm.c)
 * admits only f16 activations whose rows start on 16 bytes with scales constant along K, weight rows on 16
 * bytes, and K a multiple of the segment's elements. */

#define TOK 8 /* tokens per pass: the mma's n */
#if WDT == FP8K_E2M1
#define SEGK 128
#define FOLD 64.0f /* an E2M1 value is 64 times the E4M3 code it is turned into */
#else
#define SEGK 64
#define FOLD 1.0f
#endif
#define NACC (4 * RT)

/* Two FP8 codes (bits 0-7 and 8-15 of h) as an f16 pair, the first in the lower half. Exact: every E4M3FN and
 * E5M2 value is an f16, and NaN and Inf stay what they are. */
inline uint mma_cvt2(uint h)
{
    uint r;
#if WDT == FP8K_E5M2
    asm("cvt.rn.f16x2.e5m2x2 %0, %1;" : "=r"(r) : "h"((ushort)h));
#else
    asm("cvt.rn.f16x2.e4m3x2 %0, %1;" : "=r"(r) : "h"((ushort)h));
#endif
    return r;
}

/* D = A * B + C for one m16n8k16 tile (the fragments above). */
inline float4 mma_16816(uint a0, uint a1, uint a2, uint a3, uint b0, uint b1, float4 c)
{
    float d0, d1, d2, d3;
    asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, "
                 "{%10, %11, %12, %13};"
                 : "=f"(d0), "=f"(d1), "=f"(d2), "=f"(d3)
                 : "r"(a0), "r"(a1), "r"(a2), "r"(a3), "r"(b0), "r"(b1), "f"(c.x), "f"(c.y), "f"(c.z), "f"(c.w));
    return (float4)(d0, d1, d2, d3);
}

#if WDT == FP8K_E2M1
/* Eight E2M1 codes (nibble j is element j) as E4M3 codes of value / 64: magnitude bits to 2..4 of a byte, sign
 * to bit 7. Byte j of the first word is element 2j, byte j of the second element 2j+1. */
inline uint e2m1_even(uint w) { return ((w << 2) & 0x1c1c1c1cu) | ((w << 4) & 0x80808080u); }
inline uint e2m1_odd(uint w) { return ((w >> 2) & 0x1c1c1c1cu) | (w & 0x80808080u); }
#endif

kernel void fp8_gemv_mma(global const uchar *W, global const uchar *X, global uchar *Y, global const uchar *WS,
                         global const uchar *XS, global const uchar *B, const fp8k_gemm_params p, local float *red)
{
    const uint lid = get_local_id(0), lane = lid % 32, warp = lid / 32;
    const uint g = lane / 4, t = lane % 4;
    const uint kpart = warp % KS; /* this warp's share of the segments; warp / KS is its row group */
    const uint rowbase = (get_group_id(0) * RG + warp / KS) * (16 * RT);
    const uint nseg = p.k / SEGK;
#if SEGRUN
    const uint per = (nseg + KS - 1) / KS, sfirst = kpart * per, slast = min(nseg, sfirst + per), sstep = 1;
#else
    const uint sfirst = kpart, slast = nseg, sstep = KS;
#endif
    global const uchar *ws = WS + p.ws.offset;
    global const uchar *xs = XS + p.xs.offset;

    /* Rows g and g+8 of each tile; rows past the end compute on the last row and are not stored. */
    uint rn[2 * RT];
    global const uchar *wr[2 * RT];
#pragma unroll
    for (int i = 0; i < 2 * RT; i++) {
        rn[i] = min(rowbase + 16 * (i / 2) + g + 8 * (i % 2), p.n - 1);
        wr[i] = W + p.w_off + (ulong)rn[i] * p.w_stride;
    }

    for (uint m0 = 0; m0 < p.m; m0 += TOK) {
        /* The token whose activations this lane feeds to B (past the end: the last one, its sums not stored). */
        global const uchar *xr = X + p.x_off + (ulong)min(m0 + g, p.m - 1) * p.x_stride;
        float4 acc[RT];
#pragma unroll
        for (int r = 0; r < RT; r++) acc[r] = (float4)(0.0f);

        for (uint s0 = sfirst; s0 < slast; s0 += sstep * U) {
            /* U segments of loads in flight: this lane's 16 bytes (FP8) or four words (E2M1) of each row, and
             * the 16 (FP8) or 32 (E2M1) activations that meet them. */
            uint4 wq[U * 2 * RT];
#if WMX
            uint sq[U * 2 * RT]; /* the four E8M0 scales of each row's segment */
#endif
#if WDT == FP8K_E2M1
            uint4 xq[U * 4];
#else
            uint4 xq[U * 2];
#endif
#pragma unroll
            for (int u = 0; u < U; u++) {
                const uint seg = min(s0 + sstep * u, slast - 1); /* past the end: loads inside, unused */
#pragma unroll
                for (int i = 0; i < 2 * RT; i++) {
#if WDT == FP8K_E2M1
                    global const uint *w32 = (global const uint *)(wr[i] + (ulong)seg * 64);
                    wq[u * 2 * RT + i] = (uint4)(w32[t], w32[4 + t], w32[8 + t], w32[12 + t]);
#if WMX
                    sq[u * 2 * RT + i] = ((global const uint *)(ws + (ulong)rn[i] * p.ws.blocks_per_row))[seg];
#endif
#else
                    wq[u * 2 * RT + i] = FP8K_WLOAD16(wr[i] + (ulong)seg * 64, t, true);
#endif
                }
#if WDT == FP8K_E2M1
                global const uint4 *x4 = (global const uint4 *)(xr + ((ulong)seg * SEGK + 8 * t) * 2);
#pragma unroll
                for (int b = 0; b < 4; b++) xq[u * 4 + b] = x4[4 * b]; /* elements 32b + 8t .. +7 */
#else
                global const uint4 *x4 = (global const uint4 *)(xr + ((ulong)seg * SEGK + 16 * t) * 2);
                xq[u * 2] = x4[0];
                xq[u * 2 + 1] = x4[1];
#endif
            }

#pragma unroll
            for (int u = 0; u < U; u++) {
                const uint seg = s0 + sstep * u;
                if (seg < slast) { /* the same for every lane of the warp */
#if WDT == FP8K_E2M1
#pragma unroll
                for (int b = 0; b < 4; b++) {
                    const uint4 xw = xq[u * 4 + b]; /* f16 pairs (0,1) (2,3) (4,5) (6,7) of this lane's word */
                    /* B in the weights' order: even elements with a0/a1's k, odd ones with a2/a3's. */
                    const uint b00 = (xw.x & 0xffffu) | (xw.y << 16), b01 = (xw.x >> 16) | (xw.y & 0xffff0000u);
                    const uint b10 = (xw.z & 0xffffu) | (xw.w << 16), b11 = (xw.z >> 16) | (xw.w & 0xffff0000u);
#pragma unroll
                    for (int r = 0; r < RT; r++) {
                        const uint4 q0 = wq[u * 2 * RT + 2 * r], q1 = wq[u * 2 * RT + 2 * r + 1];
                        const uint w0 = b == 0 ? q0.x : b == 1 ? q0.y : b == 2 ? q0.z : q0.w;
                        const uint w1 = b == 0 ? q1.x : b == 1 ? q1.y : b == 2 ? q1.z : q1.w;
                        const uint e0 = e2m1_even(w0), o0 = e2m1_odd(w0), e1 = e2m1_even(w1), o1 = e2m1_odd(w1);
                        float4 d = WBLK ? (float4)(0.0f) : acc[r];
                        d = mma_16816(mma_cvt2(e0), mma_cvt2(e1), mma_cvt2(o0), mma_cvt2(o1), b00, b01, d);
                        d = mma_16816(mma_cvt2(e0 >> 16), mma_cvt2(e1 >> 16), mma_cvt2(o0 >> 16), mma_cvt2(o1 >> 16),
                                      b10, b11, d);
                        if (WBLK) {
#if WMX
                            const float sa = fp8k_e8m0(sq[u * 2 * RT + 2 * r] >> (8 * b));
                            const float sb = fp8k_e8m0(sq[u * 2 * RT + 2 * r + 1] >> (8 * b));
#else
                            const uint k = seg * SEGK + 32 * b;
                            const float sa = fp8k_scale_at(ws, &p.ws, rn[2 * r], k);
                            const float sb = fp8k_scale_at(ws, &p.ws, rn[2 * r + 1], k);
#endif
                            acc[r] = fma((float4)(sa, sa, sb, sb), d, acc[r]);
                        } else {
                            acc[r] = d;
                        }
                    }
                }
#else
                float4 d[RT];
#pragma unroll
                for (int r = 0; r < RT; r++) d[r] = WBLK ? (float4)(0.0f) : acc[r];
#pragma unroll
                for (int i = 0; i < 4; i++) {
                    const uint4 xw = xq[u * 2 + i / 2]; /* f16 pairs: elements 16t + 4i .. +3 are pairs 2i, 2i+1 */
                    const uint b0 = (i % 2) ? xw.z : xw.x, b1 = (i % 2) ? xw.w : xw.y;
#pragma unroll
                    for (int r = 0; r < RT; r++) {
                        const uint4 q0 = wq[u * 2 * RT + 2 * r], q1 = wq[u * 2 * RT + 2 * r + 1];
                        const uint w0 = i == 0 ? q0.x : i == 1 ? q0.y : i == 2 ? q0.z : q0.w;
                        const uint w1 = i == 0 ? q1.x : i == 1 ? q1.y : i == 2 ? q1.z : q1.w;
                        d[r] = mma_16816(mma_cvt2(w0), mma_cvt2(w1), mma_cvt2(w0 >> 16), mma_cvt2(w1 >> 16), b0, b1, d[r]);
                    }
                }
#pragma unroll
                for (int r = 0; r < RT; r++) {
                    if (WBLK) {
                        const float sa = fp8k_scale_at(ws, &p.ws, rn[2 * r], seg * SEGK);
                        const float sb = fp8k_scale_at(ws, &p.ws, rn[2 * r + 1], seg * SEGK);
                        acc[r] = fma((float4)(sa, sa, sb, sb), d[r], acc[r]);
                    } else {
                        acc[r] = d[r];
                    }
                }
#endif
                }
            }
        }

#if KS > 1
        /* The KS warps of a row group: the first adds the others' sums, in order of kpart. */
        barrier(CLK_LOCAL_MEM_FENCE); /* the previous pass's reads of red are done */
#pragma unroll
        for (int r = 0; r < RT; r++) vstore4(acc[r], warp * RT * 32 + r * 32 + lane, red);
        barrier(CLK_LOCAL_MEM_FENCE);
        if (kpart == 0) {
            for (uint kp = 1; kp < KS; kp++)
#pragma unroll
                for (int r = 0; r < RT; r++) acc[r] += vload4((warp + kp) * RT * 32 + r * 32 + lane, red);
        }
#endif
        if (kpart == 0) {
#pragma unroll
            for (int r = 0; r < RT; r++) {
                const float v[4] = {acc[r].x, acc[r].y, acc[r].z, acc[r].w};
#pragma unroll
                for (int j = 0; j < 4; j++) {
                    const uint row = rowbase + 16 * r + g + 8 * (j / 2), tok = m0 + 2 * t + j % 2;
                    if (row < p.n && tok < p.m)
                        fp8k_epilogue(Y + p.y_off, ws, xs, B + p.b_off, &p, tok, row, v[j] * FOLD);
                }
            }
        }
    }
}
