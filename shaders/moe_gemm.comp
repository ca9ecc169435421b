#version 450
// Grouped GEMM over a plan's row tiles (prefill): one workgroup per (tile of BM = row_align rows, block of
// output columns). The tile's expert comes from tile_expert (NONE: the tile lies past total_rows and the
// workgroup leaves at once). A 16 x 16 thread grid holds TM x TN results per thread; X and W pass through
// shared memory as f32, decoded and scaled on the way in, one 16-wide slice of K at a time, so each weight
// byte is read once per tile of BM rows. Gated epilogues: the block's weight rows are BN/2 gate rows and the
// BN/2 matching up rows, so every thread holds both halves of its output columns. Dense mode (no plan):
// tiles of m tokens of expert 0.
#include "moe_gemm_common.glsl"

layout(local_size_x = 256) in;
layout(constant_id = 18) const uint TM = 4;          // rows per thread: BM = 16 TM
layout(constant_id = 19) const uint TN = 8;          // weight rows per thread: BN = 16 TN
layout(constant_id = 20) const bool W_VEC = true;    // weight rows aligned for 16-byte (E2M1: 8-byte) loads

const uint BM = 16u * TM, BN = 16u * TN, BK = 16u;
const uint BNO = GATED ? BN / 2u : BN;              // output columns per block
const uint LDA = BM + 4u, LDB = BN + 4u;
shared float As[BK * LDA];
shared float Bs[BK * LDB];
shared uint src_of[BM];
shared uint tile_e;

// Weight row (of expert e) behind local weight column j of the block starting at output column c0; NONE
// past the edge.
uint block_w_row(uint c0, uint j)
{
    if (GATED) {
        const bool up = j >= BN / 2u;
        const uint c = c0 + (up ? j - BN / 2u : j);
        return c < pc.n_out ? w_row_of(c, up) : NONE;
    }
    const uint c = c0 + j;
    return c < pc.n ? c : NONE;
}

void main()
{
    const uint tid = gl_LocalInvocationID.x;
    const uint tx = tid % 16u, ty = tid / 16u;
    const uint c0 = gl_WorkGroupID.x * BNO;
    const uint t = gl_WorkGroupID.z * pc.grid_y + gl_WorkGroupID.y;
    const uint r0 = t * BM;

    if (tid == 0u) {
        uint e = 0u;
        if (!DENSE) {
            if (!plan_ok()) {
                if (gl_WorkGroupID.x == 0u && t == 0u) moe_error(ST_INVALID_ARGUMENT);
                e = NONE;
            } else {
                e = plan[tile_expert_at() + t];
                if (e != NONE && e >= pc.experts) {
                    moe_error(ST_INVALID_ARGUMENT);
                    e = NONE;
                } else if (e != NONE && !in_window(e)) {
                    e = NONE;
                }
            }
        } else if (r0 >= pc.m) {
            e = NONE;
        }
        tile_e = e;
    }
    barrier();
    const uint e = tile_e;
    if (e == NONE) return;
    if (tid < BM) src_of[tid] = source_row(r0 + tid);
    barrier();

    float acc[TM * TN];
    for (uint i = 0u; i < TM * TN; i++) acc[i] = 0.0;
    const float fold = dec_fold(WDT);
    // The weight row this thread loads in the vector path (one 16-value slice per row).
    const uint my_row = tid < BN ? block_w_row(c0, tid) : NONE;

    for (uint k0 = 0u; k0 < pc.k; k0 += BK) {
        // X: consecutive threads take consecutive k of one row.
        for (uint q = tid; q < BM * BK; q += 256u) {
            const uint i = q / BK, kk = q % BK, k = k0 + kk, xr = src_of[i];
            float v = 0.0;
            if (xr != NONE && k < pc.k) {
                v = x_elem(xr, k);
                if (XS_MODE == SM_CHUNK || XS_MODE == SM_ELEM) v *= x_scale_at(x_scale_row(xr) + k / XS_BC);
            }
            As[kk * LDA + i] = v;
        }
        // W: a vector load of 16 values per row where the slice is whole, else element by element.
        if (W_VEC && k0 + BK <= pc.k) {
            if (tid < BN) {
                vec4 d[4];
                if (my_row == NONE) {
                    d[0] = d[1] = d[2] = d[3] = vec4(0.0);
                } else if (WDT == DT_E2M1) {
                    const uint a = (w_row_base(e, my_row) + (k0 >> 1)) >> 2;
                    dec8_e2m1(w32[a], EXACT, d[0], d[1]);
                    dec8_e2m1(w32[a + 1u], EXACT, d[2], d[3]);
                } else {
                    const uvec4 q = w128[(w_row_base(e, my_row) + k0) >> 4];
                    dec16_fp8(WDT, q, EXACT, d[0], d[1], d[2], d[3]);
                }
                float s = fold;
                if (my_row != NONE && WS_MODE == SM_CHUNK) s *= w_scale_at(w_scale_row(e, my_row) + k0 / WS_BC);
                for (uint j = 0u; j < 4u; j++) {
                    vec4 v = d[j] * s;
                    if (my_row != NONE && WS_MODE == SM_ELEM) {
                        const uint sr = w_scale_row(e, my_row), kb = k0 + 4u * j;
                        v *= vec4(w_scale_at(sr + kb / WS_BC), w_scale_at(sr + (kb + 1u) / WS_BC),
                                  w_scale_at(sr + (kb + 2u) / WS_BC), w_scale_at(sr + (kb + 3u) / WS_BC));
                    }
                    Bs[(4u * j) * LDB + tid] = v.x;
                    Bs[(4u * j + 1u) * LDB + tid] = v.y;
                    Bs[(4u * j + 2u) * LDB + tid] = v.z;
                    Bs[(4u * j + 3u) * LDB + tid] = v.w;
                }
            }
        } else {
            for (uint q = tid; q < BN * BK; q += 256u) {
                const uint j = q / BK, kk = q % BK, k = k0 + kk, n = block_w_row(c0, j);
                float v = 0.0;
                if (n != NONE && k < pc.k) {
                    v = w_elem(e, n, k);
                    if (WS_MODE == SM_CHUNK || WS_MODE == SM_ELEM) v *= w_scale_at(w_scale_row(e, n) + k / WS_BC);
                }
                Bs[kk * LDB + j] = v;
            }
        }
        barrier();
        for (uint kk = 0u; kk < BK; kk++) {
            float a[TM], b[TN];
            for (uint i = 0u; i < TM; i++) a[i] = As[kk * LDA + ty + 16u * i];
            for (uint j = 0u; j < TN; j++) b[j] = Bs[kk * LDB + tx + 16u * j];
            for (uint i = 0u; i < TM; i++)
                for (uint j = 0u; j < TN; j++) acc[i * TN + j] = fma(a[i], b[j], acc[i * TN + j]);
        }
        barrier();
    }

    // Epilogue: padding rows are written as zeros; rows past the dense m are not written.
    for (uint i = 0u; i < TM; i++) {
        const uint r = r0 + ty + 16u * i;
        if (DENSE && r >= pc.m) continue;
        const uint xr = src_of[ty + 16u * i];
        const uint JO = GATED ? TN / 2u : TN;
        for (uint j = 0u; j < JO; j++) {
            const uint c = c0 + tx + 16u * j;
            if (c >= pc.n_out) continue;
            float out_v = 0.0;
            if (xr != NONE) {
                const uint ng = w_row_of(c, false);
                const float g = finish(e, ng, xr, acc[i * TN + j]);
                const float u = GATED ? finish(e, w_row_of(c, true), xr, acc[i * TN + j + TN / 2u]) : 0.0;
                out_v = epilogue(g, u);
            }
            y_store(r, c, out_v);
        }
    }
}
