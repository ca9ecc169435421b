#version 450
// Grouped GEMM per expert (decode, and plans whose row_align is no tile size). A team of invocations (a
// subgroup; the whole workgroup where subgroup operations are missing) owns a block of NRW weight rows of one
// active expert and takes all of that expert's rows, MT at a time, so that its weights are read once for up to
// MT rows: every member streams 16-byte weight loads (16 FP8 or 32 E2M1 values) of the block's rows, decodes
// them in registers and multiplies them with the rows' activations; the team then sums and writes. A workgroup
// holds BPW blocks of one expert, its teams taking them in turn, so that short rows (a down projection's K of
// 768) still give each workgroup enough work, and no barrier is needed outside the no-subgroup build. Padding
// rows of the group are written as zeros. Dense mode (no plan): MT tokens of expert 0 per workgroup.
//
// Sums are plain f32 by default. PRECISE (FP8_VK_MOE_PRECISE_ACCUM=1) computes each pre-activation to about
// 2^-40 and rounds it once: every product is exact (a decoded weight has at most 4 significant bits, and f32
// activations are split into a 20-bit and a 4-bit part), sums are unevaluated pairs of floats with error-free
// additions, block scales multiply the 16-element partial sums exactly, and the team reduction adds the pairs
// the same way. It is not free: on the H100 it took 1.7-2.1x the time at one token.
// [[unroll]]: loops over register arrays must unroll, or the arrays (accumulators above all) go to local memory.
#extension GL_EXT_control_flow_attributes : require
#ifndef FP8_NO_SUBGROUP
#extension GL_KHR_shader_subgroup_basic : enable
#extension GL_KHR_shader_subgroup_arithmetic : enable
#extension GL_KHR_shader_subgroup_shuffle : enable
#endif

#include "moe_gemm_common.glsl"

layout(local_size_x_id = 0) in;
layout(constant_id = 18) const uint NRW = 2;        // weight rows per block (gated: NRW/2 gate + NRW/2 up)
layout(constant_id = 19) const uint MT = 4;         // rows per pass
layout(constant_id = 20) const bool W_VEC = true;   // weight rows start on 16 bytes
layout(constant_id = 21) const bool X_VEC = true;   // X rows aligned for 16-byte loads
layout(constant_id = 22) const bool PRECISE = false; // exact products, two-float sums
layout(constant_id = 23) const uint BPW = 1;        // blocks per workgroup (the host's count of its subgroups)

const uint WG = gl_WorkGroupSize.x;
const uint NCO = GATED ? NRW / 2u : NRW;            // output columns per block
const uint NACC = MT * NRW;
const bool XSPLIT = PRECISE && XDT == DT_F32;        // f32 activations: split for exact products
#ifndef FP8_NO_SUBGROUP
#define TEAM gl_SubgroupSize
#define TEAM_ID gl_SubgroupID
#define TEAMS gl_NumSubgroups
#define MEMBER gl_SubgroupInvocationID
#else
#define TEAM WG
#define TEAM_ID 0u
#define TEAMS 1u
#define MEMBER gl_LocalInvocationID.x
shared float red[WG * NACC];   // the team sum through shared memory
shared float red_lo[PRECISE ? WG * NACC : 1u];
#endif

uint wrow_of(uint c0, uint j)
{
    if (GATED) {
        const bool up = j >= NRW / 2u;
        const uint c = c0 + (up ? j - NRW / 2u : j);
        return w_row_of(min(c, pc.n_out - 1u), up);
    }
    return min(c0 + j, pc.n - 1u);
}

// FP8 activations decode to value / dec_fold; with f32 sums the fold goes into xsc (one multiply per 16
// values instead of 16), PRECISE keeps it in the values, where its exact products need it.
const bool X_FOLD_IN_SCALE = !PRECISE && XDT <= DT_E5M2FNUZ && X_VEC;

// 16 activations of X row xr from element k, times their per-element scales; a per-chunk scale is returned
// in xsc (1 otherwise; times dec_fold when X_FOLD_IN_SCALE) so that the caller can apply it to the partial sum.
void load_x16(uint xr, uint k, out vec4 v[4], out float xsc)
{
    const uint i = pc.x_off + xr * pc.x_stride + k;
    if (XDT == DT_F32 && X_VEC) {
        for (uint j = 0u; j < 4u; j++) v[j] = uintBitsToFloat(x128[(i >> 2) + j]);
    } else if (XDT == DT_BF16 && X_VEC) {
        for (uint j = 0u; j < 2u; j++) {
            const uvec4 q = x128[(i >> 3) + j];
            v[2u * j] = uintBitsToFloat(uvec4(q.x << 16, q.x & 0xFFFF0000u, q.y << 16, q.y & 0xFFFF0000u));
            v[2u * j + 1u] = uintBitsToFloat(uvec4(q.z << 16, q.z & 0xFFFF0000u, q.w << 16, q.w & 0xFFFF0000u));
        }
    } else if (XDT <= DT_E5M2FNUZ && X_VEC) {
        const uvec4 q = x128[i >> 4];
        const float f = X_FOLD_IN_SCALE ? 1.0 : dec_fold(XDT);
        dec16_fp8(XDT, q, EXACT, v[0], v[1], v[2], v[3]);
        [[unroll]] for (uint j = 0u; j < 4u; j++) v[j] *= f;
    } else {
        for (uint j = 0u; j < 4u; j++)
            v[j] = vec4(x_elem(xr, k + 4u * j), x_elem(xr, k + 4u * j + 1u), x_elem(xr, k + 4u * j + 2u),
                        x_elem(xr, k + 4u * j + 3u));
    }
    xsc = XS_MODE == SM_CHUNK ? x_scale_at(x_scale_row(xr) + k / XS_BC) : 1.0;
    if (X_FOLD_IN_SCALE) xsc *= dec_fold(XDT);
    if (XS_MODE == SM_ELEM) {
        const uint sr = x_scale_row(xr);
        for (uint j = 0u; j < 4u; j++) {
            const uint kb = k + 4u * j;
            v[j] *= vec4(x_scale_at(sr + kb / XS_BC), x_scale_at(sr + (kb + 1u) / XS_BC), x_scale_at(sr + (kb + 2u) / XS_BC),
                         x_scale_at(sr + (kb + 3u) / XS_BC));
        }
    }
}

// Half h of a 16-byte weight load (16 values) of the row whose first scale is srow (w_scale_row), decoded
// (times 1/fold) with per-element scales; the per-chunk scale is returned in wsc (1 otherwise).
void decode_w16(uvec4 q, uint h, uint srow, uint k, out vec4 wv[4], out float wsc)
{
    if (WDT == DT_E2M1) {
        dec8_e2m1(h == 0u ? q.x : q.z, EXACT, wv[0], wv[1]);
        dec8_e2m1(h == 0u ? q.y : q.w, EXACT, wv[2], wv[3]);
    } else {
        dec16_fp8(WDT, q, EXACT, wv[0], wv[1], wv[2], wv[3]);
    }
    wsc = WS_MODE == SM_CHUNK ? w_scale_at(srow + k / WS_BC) : 1.0;
    if (WS_MODE == SM_ELEM) {
        for (uint j = 0u; j < 4u; j++) {
            const uint kb = k + 4u * j;
            wv[j] *= vec4(w_scale_at(srow + kb / WS_BC), w_scale_at(srow + (kb + 1u) / WS_BC), w_scale_at(srow + (kb + 2u) / WS_BC),
                          w_scale_at(srow + (kb + 3u) / WS_BC));
        }
    }
}

// finish() on a two-float sum: scales and bias applied without rounding, one rounding at the end.
float finish_acc(uint e, uint n, uint xr, float h, float l)
{
    if (!PRECISE) return finish(e, n, xr, h);
    df_mul(h, l, pc.w_ts);
    df_mul(h, l, pc.x_ts);
    if (WS_MODE == SM_ROW) df_mul(h, l, w_scale_at(w_scale_row(e, n)));
    if (XS_MODE == SM_ROW) df_mul(h, l, x_scale_at(x_scale_row(xr)));
    if (HAS_TS) df_mul(h, l, expert_ts(e));
    if (BDT != DT_NONE) df_add(h, l, bias_of(e, n), 0.0);
    precise float v = h + l;
    return v;
}

// The active expert of workgroup row `slot` and its rows [r0, r0 + cnt) of the plan, padded to `end` (e = NONE:
// nothing to do). Every invocation reads the plan; `report` says which one reports what is wrong with it.
void slot_rows(uint slot, bool report, out uint e, out uint r0, out uint cnt, out uint end)
{
    e = NONE;
    r0 = cnt = end = 0u;
    if (DENSE) {
        e = 0u;
        r0 = slot * MT;
        cnt = r0 < pc.m ? min(MT, pc.m - r0) : 0u;
        end = r0 + cnt;
        return;
    }
    if (!plan_ok()) {
        if (report && gl_WorkGroupID.x == 0u && slot == 0u) moe_error(ST_INVALID_ARGUMENT);
        return;
    }
    if (slot >= plan[pc.plan_base + H_ACTIVE]) return;
    e = plan[active_at() + slot];
    if (e >= pc.experts) {
        if (report) moe_error(ST_INVALID_ARGUMENT);
        e = NONE;
        return;
    }
    r0 = plan[offsets_at() + e];
    end = plan[offsets_at() + e + 1u];
    cnt = plan[counts_at() + e];
    if (r0 > end || end > pc.rows || cnt > end - r0) {
        if (report) moe_error(ST_INVALID_ARGUMENT);
        e = NONE;
    } else if (!in_window(e)) {
        e = NONE;
    }
}

void main()
{
    const uint tid = gl_LocalInvocationID.x, lane = MEMBER;
    const uint slot = gl_WorkGroupID.z * pc.grid_y + gl_WorkGroupID.y;
    uint e, r0, cnt, end;
    slot_rows(slot, tid == 0u, e, r0, cnt, end);
    if (e == NONE) return; // the same for the whole workgroup

    const uint epl = WDT == DT_E2M1 ? 32u : 16u;    // weights per 16-byte load
    const uint halves = WDT == DT_E2M1 ? 2u : 1u;
    const uint nloads = W_VEC ? pc.k / epl : 0u;
    const float fold = dec_fold(WDT);
    const float inv_fold = 1.0 / fold;

    for (uint b = TEAM_ID; b < BPW; b += TEAMS) { // uniform in each team
        const uint c0 = (gl_WorkGroupID.x * BPW + b) * NCO;
        if (c0 >= pc.n_out) break;
        uint wrow[NRW], rowb[NRW], srow[NRW]; // the block's weight rows, where each starts, its first scale
        [[unroll]] for (uint j = 0u; j < NRW; j++) {
            wrow[j] = wrow_of(c0, j);
            rowb[j] = w_row_base(e, wrow[j]);
            srow[j] = w_scale_row(e, wrow[j]);
        }

        for (uint rb = r0; rb < r0 + cnt; rb += MT) {
            // xq: the X row each token's sums read. With one token a pass (decode) a missing row (a bad token)
            // reads row 0 and its sums are dropped, with no branch that would keep its activation loads behind
            // the weights' decode: the H100's one-token gate/up GEMVs took up to 4% less time (run 125). With
            // more, passes past the group's end skip their sums: computing them cost up to 28% at eight tokens.
            uint xr[MT], xq[MT];
            [[unroll]] for (uint t = 0u; t < MT; t++) {
                xr[t] = rb + t < r0 + cnt ? source_row(rb + t) : NONE;
                xq[t] = xr[t] == NONE ? 0u : xr[t];
            }
            float acc[NACC], acc_lo[NACC];
            [[unroll]] for (uint i = 0u; i < NACC; i++) acc[i] = acc_lo[i] = 0.0;

            for (uint c = lane; c < nloads; c += TEAM) {
                uvec4 wq[NRW];
                [[unroll]] for (uint j = 0u; j < NRW; j++) wq[j] = w128[(rowb[j] + c * 16u) >> 4];
                [[unroll]] for (uint h = 0u; h < halves; h++) {
                    const uint k = c * epl + h * 16u;
                    vec4 wv[NRW * 4u];
                    float wsc[NRW];
                    [[unroll]] for (uint j = 0u; j < NRW; j++) {
                        vec4 d[4];
                        decode_w16(wq[j], h, srow[j], k, d, wsc[j]);
                        [[unroll]] for (uint q = 0u; q < 4u; q++) wv[j * 4u + q] = d[q];
                    }
                    [[unroll]] for (uint t = 0u; t < MT; t++) {
                        vec4 xv[4];
                        float xsc;
                        if (MT > 1u && xr[t] == NONE) continue;
                        load_x16(xq[t], k, xv, xsc);
                        if (!PRECISE) {
                            [[unroll]] for (uint j = 0u; j < NRW; j++)
                                acc[t * NRW + j] += (dot(wv[j * 4u], xv[0]) + dot(wv[j * 4u + 1u], xv[1]) +
                                                     dot(wv[j * 4u + 2u], xv[2]) + dot(wv[j * 4u + 3u], xv[3])) * (wsc[j] * xsc);
                            continue;
                        }
                        vec4 xl[4];
                        [[unroll]] for (uint q = 0u; q < 4u; q++) {
                            const vec4 hi = XSPLIT ? uintBitsToFloat(floatBitsToUint(xv[q]) & 0xFFFFFFF0u) : xv[q];
                            xl[q] = xv[q] - hi; // exact: the low 4 bits
                            xv[q] = hi;
                        }
                        [[unroll]] for (uint j = 0u; j < NRW; j++) {
                            float ch = 0.0, cl = 0.0;
                            [[unroll]] for (uint q = 0u; q < 4u; q++)
                                [[unroll]] for (uint i = 0u; i < 4u; i++) {
                                    const float w = wv[j * 4u + q][i];
                                    float sum, err;
                                    two_sum(ch, w * xv[q][i], sum, err); // w * hi is exact
                                    ch = sum;
                                    cl += err;
                                    if (XSPLIT) cl = fma(w, xl[q][i], cl);
                                }
                            if (WS_MODE == SM_CHUNK) df_mul(ch, cl, wsc[j]);
                            if (XS_MODE == SM_CHUNK) df_mul(ch, cl, xsc);
                            df_add(acc[t * NRW + j], acc_lo[t * NRW + j], ch, cl);
                        }
                    }
                }
            }
            // The rest of K (all of it without vector loads): one element per member, exact decode.
            for (uint k = nloads * epl + lane; k < pc.k; k += TEAM) {
                [[unroll]] for (uint j = 0u; j < NRW; j++) {
                    const uint n = wrow[j];
                    const float w = w_elem(e, n, k) * inv_fold;
                    const float ws = WS_MODE == SM_CHUNK || WS_MODE == SM_ELEM ? w_scale_at(srow[j] + k / WS_BC) : 1.0;
                    [[unroll]] for (uint t = 0u; t < MT; t++) {
                        if (xr[t] == NONE) continue;
                        const float x = x_elem(xr[t], k);
                        const float xs = XS_MODE == SM_CHUNK || XS_MODE == SM_ELEM ? x_scale_at(x_scale_row(xr[t]) + k / XS_BC) : 1.0;
                        if (!PRECISE) {
                            acc[t * NRW + j] += w * ws * x * xs;
                            continue;
                        }
                        const float xh = XSPLIT ? uintBitsToFloat(floatBitsToUint(x) & 0xFFFFFFF0u) : x;
                        float ph = w * xh, pl = XSPLIT ? w * (x - xh) : 0.0;
                        if (WS_MODE == SM_CHUNK || WS_MODE == SM_ELEM) df_mul(ph, pl, ws);
                        if (XS_MODE == SM_CHUNK || XS_MODE == SM_ELEM) df_mul(ph, pl, xs);
                        df_add(acc[t * NRW + j], acc_lo[t * NRW + j], ph, pl);
                    }
                }
            }

            // The team's sums, left in every member's acc (and acc_lo).
#ifndef FP8_NO_SUBGROUP
            [[unroll]] for (uint i = 0u; i < NACC; i++) {
                if (!PRECISE) {
                    acc[i] = subgroupAdd(acc[i]);
                    continue;
                }
                // A butterfly of error-free additions: every lane ends with the same pair.
                float h = acc[i], l = acc_lo[i];
                for (uint off = gl_SubgroupSize / 2u; off > 0u; off /= 2u)
                    df_add(h, l, subgroupShuffleXor(h, off), subgroupShuffleXor(l, off));
                acc[i] = h;
                acc_lo[i] = l;
            }
#else
            [[unroll]] for (uint i = 0u; i < NACC; i++) {
                red[tid * NACC + i] = acc[i];
                if (PRECISE) red_lo[tid * NACC + i] = acc_lo[i];
            }
            barrier();
            for (uint i = tid; i < NACC; i += WG) {
                float h = 0.0, l = 0.0;
                for (uint g = 0u; g < WG; g++) {
                    if (PRECISE) df_add(h, l, red[g * NACC + i], red_lo[g * NACC + i]);
                    else h += red[g * NACC + i];
                }
                red[i] = h; // invocation 0's slot, read by nobody else after the barrier below
                if (PRECISE) red_lo[i] = l;
            }
            barrier();
            [[unroll]] for (uint i = 0u; i < NACC; i++) {
                acc[i] = red[i];
                acc_lo[i] = PRECISE ? red_lo[i] : 0.0;
            }
            barrier(); // every read is done before the next pass writes
#endif
            // Output (row t, column jc) is written by member (t * NCO + jc) % TEAM.
            [[unroll]] for (uint t = 0u; t < MT; t++) {
                [[unroll]] for (uint jc = 0u; jc < NCO; jc++) {
                    const uint c = c0 + jc, r = rb + t;
                    if (lane != (t * NCO + jc) % TEAM || r >= r0 + cnt || c >= pc.n_out) continue;
                    float out_v = 0.0;
                    if (xr[t] != NONE) {
                        const uint ig = t * NRW + jc, iu = ig + NRW / 2u;
                        const float g = finish_acc(e, w_row_of(c, false), xr[t], acc[ig] * fold, PRECISE ? acc_lo[ig] * fold : 0.0);
                        const float u = GATED ? finish_acc(e, w_row_of(c, true), xr[t], acc[iu] * fold, PRECISE ? acc_lo[iu] * fold : 0.0) : 0.0;
                        out_v = epilogue(g, u);
                    }
                    y_store(r, c, out_v);
                }
            }
        }
        // Padding rows of the group are zeros.
        for (uint q = lane; q < (end - r0 - cnt) * NCO; q += TEAM) {
            const uint r = r0 + cnt + q / NCO, c = c0 + q % NCO;
            if (c < pc.n_out) y_store(r, c, 0.0);
        }
    }
}
