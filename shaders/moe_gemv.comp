#version 450
// Grouped GEMM per expert (decode, and plans whose row_align is no tile size): one workgroup per (active
// expert, block of output columns) takes all of that expert's rows, MT at a time, so that its weights are read
// once for up to MT rows. Every invocation streams 16-byte weight loads (16 FP8 or 32 E2M1 values) of the
// block's NRW weight rows, decodes them in registers and multiplies them with the rows' activations; the
// workgroup then sums. Padding rows of the group are written as zeros. Dense mode (no plan): MT tokens of
// expert 0 per workgroup.
//
// PRECISE (the default) computes each pre-activation to about 2^-40 and rounds it once: every product is
// exact (a decoded weight has at most 4 significant bits, and f32 activations are split into a 20-bit and a
// 4-bit part), sums are unevaluated pairs of floats with error-free additions, block scales multiply the
// 16-element partial sums exactly, and the workgroup reduction adds the pairs the same way. The kernel is
// bound by reading weights at decode sizes, which leaves room for the extra arithmetic; without PRECISE it
// accumulates in plain f32 (FP8_VK_MOE_FAST_ACCUM=1).
#ifndef FP8_NO_SUBGROUP
#extension GL_KHR_shader_subgroup_basic : enable
#extension GL_KHR_shader_subgroup_arithmetic : enable
#extension GL_KHR_shader_subgroup_shuffle : enable
#endif

#include "moe_gemm_common.glsl"

layout(local_size_x_id = 0) in;
layout(constant_id = 18) const uint NRW = 4;        // weight rows per workgroup (gated: NRW/2 gate + NRW/2 up)
layout(constant_id = 19) const uint MT = 4;         // rows per pass
layout(constant_id = 20) const bool W_VEC = true;   // weight rows start on 16 bytes
layout(constant_id = 21) const bool X_VEC = true;   // X rows aligned for 16-byte loads
layout(constant_id = 22) const bool PRECISE = true; // exact products, two-float sums

const uint WG = gl_WorkGroupSize.x;
const uint NCO = GATED ? NRW / 2u : NRW;            // output columns per workgroup
const uint NACC = MT * NRW;
const bool XSPLIT = PRECISE && XDT == DT_F32;        // f32 activations: split for exact products
#ifndef FP8_NO_SUBGROUP
const uint RED_SLOTS = 32u;                           // per subgroup (at most 32 subgroups of 4 or more)
#else
const uint RED_SLOTS = WG;
#endif
shared float red[RED_SLOTS * NACC];
shared float red_lo[PRECISE ? RED_SLOTS * NACC : 1u];
shared uint src_of[MT];
shared uint g_e, g_r0, g_cnt, g_end;

uint wrow_of(uint c0, uint j)
{
    if (GATED) {
        const bool up = j >= NRW / 2u;
        const uint c = c0 + (up ? j - NRW / 2u : j);
        return w_row_of(min(c, pc.n_out - 1u), up);
    }
    return min(c0 + j, pc.n - 1u);
}

// 16 activations of X row xr from element k, times their per-element scales; a per-chunk scale is returned
// in xsc (1 otherwise) so that the caller can apply it to the partial sum.
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
        const float f = dec_fold(XDT);
        v[0] = dec4_fp8(XDT, q.x, EXACT) * f;
        v[1] = dec4_fp8(XDT, q.y, EXACT) * f;
        v[2] = dec4_fp8(XDT, q.z, EXACT) * f;
        v[3] = dec4_fp8(XDT, q.w, EXACT) * f;
    } else {
        for (uint j = 0u; j < 4u; j++)
            v[j] = vec4(x_elem(xr, k + 4u * j), x_elem(xr, k + 4u * j + 1u), x_elem(xr, k + 4u * j + 2u),
                        x_elem(xr, k + 4u * j + 3u));
    }
    xsc = XS_MODE == SM_CHUNK ? x_scale_at(x_scale_row(xr) + k / XS_BC) : 1.0;
    if (XS_MODE == SM_ELEM) {
        const uint sr = x_scale_row(xr);
        for (uint j = 0u; j < 4u; j++) {
            const uint kb = k + 4u * j;
            v[j] *= vec4(x_scale_at(sr + kb / XS_BC), x_scale_at(sr + (kb + 1u) / XS_BC), x_scale_at(sr + (kb + 2u) / XS_BC),
                         x_scale_at(sr + (kb + 3u) / XS_BC));
        }
    }
}

// Half h of a 16-byte weight load of row n (16 values), decoded (times 1/fold) with per-element scales; the
// per-chunk scale is returned in wsc (1 otherwise).
void decode_w16(uvec4 q, uint h, uint e, uint n, uint k, out vec4 wv[4], out float wsc)
{
    if (WDT == DT_E2M1) {
        dec8_e2m1(h == 0u ? q.x : q.z, EXACT, wv[0], wv[1]);
        dec8_e2m1(h == 0u ? q.y : q.w, EXACT, wv[2], wv[3]);
    } else {
        wv[0] = dec4_fp8(WDT, q.x, EXACT);
        wv[1] = dec4_fp8(WDT, q.y, EXACT);
        wv[2] = dec4_fp8(WDT, q.z, EXACT);
        wv[3] = dec4_fp8(WDT, q.w, EXACT);
    }
    wsc = WS_MODE == SM_CHUNK ? w_scale_at(w_scale_row(e, n) + k / WS_BC) : 1.0;
    if (WS_MODE == SM_ELEM) {
        const uint sr = w_scale_row(e, n);
        for (uint j = 0u; j < 4u; j++) {
            const uint kb = k + 4u * j;
            wv[j] *= vec4(w_scale_at(sr + kb / WS_BC), w_scale_at(sr + (kb + 1u) / WS_BC), w_scale_at(sr + (kb + 2u) / WS_BC),
                          w_scale_at(sr + (kb + 3u) / WS_BC));
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

void main()
{
    const uint tid = gl_LocalInvocationID.x;
    const uint c0 = gl_WorkGroupID.x * NCO;
    const uint slot = gl_WorkGroupID.z * pc.grid_y + gl_WorkGroupID.y;

    // Which rows: the expert's group from the plan (checked), or MT tokens in dense mode.
    if (tid == 0u) {
        uint e = NONE, r0 = 0u, cnt = 0u, end = 0u;
        if (DENSE) {
            e = 0u;
            r0 = slot * MT;
            cnt = r0 < pc.m ? min(MT, pc.m - r0) : 0u;
            end = r0 + cnt;
        } else if (!plan_ok()) {
            if (gl_WorkGroupID.x == 0u && slot == 0u) moe_error(ST_INVALID_ARGUMENT);
        } else if (slot < plan[pc.plan_base + H_ACTIVE]) {
            e = plan[active_at() + slot];
            if (e >= pc.experts) {
                moe_error(ST_INVALID_ARGUMENT);
                e = NONE;
            } else {
                r0 = plan[offsets_at() + e];
                end = plan[offsets_at() + e + 1u];
                cnt = plan[counts_at() + e];
                if (r0 > end || end > pc.rows || cnt > end - r0) {
                    moe_error(ST_INVALID_ARGUMENT);
                    e = NONE;
                }
            }
        }
        g_e = e;
        g_r0 = r0;
        g_cnt = cnt;
        g_end = end;
    }
    barrier();
    const uint e = g_e, r0 = g_r0, cnt = g_cnt, end = g_end;
    if (e == NONE) return;

    const uint epl = WDT == DT_E2M1 ? 32u : 16u;    // weights per 16-byte load
    const uint halves = WDT == DT_E2M1 ? 2u : 1u;
    const uint nloads = W_VEC ? pc.k / epl : 0u;
    const float fold = dec_fold(WDT);
    uint rowb[NRW];
    for (uint j = 0u; j < NRW; j++) rowb[j] = w_row_base(e, wrow_of(c0, j));

    for (uint rb = r0; rb < r0 + cnt; rb += MT) {
        if (tid < MT) src_of[tid] = rb + tid < r0 + cnt ? source_row(rb + tid) : NONE;
        barrier();
        uint xr[MT];
        for (uint t = 0u; t < MT; t++) xr[t] = src_of[t];
        float acc[NACC], acc_lo[NACC];
        for (uint i = 0u; i < NACC; i++) acc[i] = acc_lo[i] = 0.0;

        for (uint c = tid; c < nloads; c += WG) {
            uvec4 wq[NRW];
            for (uint j = 0u; j < NRW; j++) wq[j] = w128[(rowb[j] + c * 16u) >> 4];
            for (uint h = 0u; h < halves; h++) {
                const uint k = c * epl + h * 16u;
                vec4 wv[NRW * 4u];
                float wsc[NRW];
                for (uint j = 0u; j < NRW; j++) {
                    vec4 d[4];
                    decode_w16(wq[j], h, e, wrow_of(c0, j), k, d, wsc[j]);
                    for (uint q = 0u; q < 4u; q++) wv[j * 4u + q] = d[q];
                }
                for (uint t = 0u; t < MT; t++) {
                    if (xr[t] == NONE) continue;
                    vec4 xv[4];
                    float xsc;
                    load_x16(xr[t], k, xv, xsc);
                    if (!PRECISE) {
                        for (uint j = 0u; j < NRW; j++)
                            acc[t * NRW + j] += (dot(wv[j * 4u], xv[0]) + dot(wv[j * 4u + 1u], xv[1]) +
                                                 dot(wv[j * 4u + 2u], xv[2]) + dot(wv[j * 4u + 3u], xv[3])) * (wsc[j] * xsc);
                        continue;
                    }
                    vec4 xl[4];
                    for (uint q = 0u; q < 4u; q++) {
                        const vec4 hi = XSPLIT ? uintBitsToFloat(floatBitsToUint(xv[q]) & 0xFFFFFFF0u) : xv[q];
                        xl[q] = xv[q] - hi; // exact: the low 4 bits
                        xv[q] = hi;
                    }
                    for (uint j = 0u; j < NRW; j++) {
                        float ch = 0.0, cl = 0.0;
                        for (uint q = 0u; q < 4u; q++)
                            for (uint i = 0u; i < 4u; i++) {
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
        // The rest of K (all of it without vector loads): one element per invocation, exact decode.
        const float inv_fold = 1.0 / fold;
        for (uint k = nloads * epl + tid; k < pc.k; k += WG) {
            for (uint j = 0u; j < NRW; j++) {
                const uint n = wrow_of(c0, j);
                const float w = w_elem(e, n, k) * inv_fold;
                const float ws = WS_MODE == SM_CHUNK || WS_MODE == SM_ELEM ? w_scale_at(w_scale_row(e, n) + k / WS_BC) : 1.0;
                for (uint t = 0u; t < MT; t++) {
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

        // Workgroup sums: red[g * NACC + i] (and red_lo) hold group g's part of accumulator i.
#ifndef FP8_NO_SUBGROUP
        for (uint i = 0u; i < NACC; i++) {
            if (!PRECISE) {
                const float s = subgroupAdd(acc[i]);
                if (subgroupElect()) red[gl_SubgroupID * NACC + i] = s;
                continue;
            }
            // A butterfly of error-free additions: every lane ends with the same pair.
            float h = acc[i], l = acc_lo[i];
            for (uint off = gl_SubgroupSize / 2u; off > 0u; off /= 2u)
                df_add(h, l, subgroupShuffleXor(h, off), subgroupShuffleXor(l, off));
            if (subgroupElect()) {
                red[gl_SubgroupID * NACC + i] = h;
                red_lo[gl_SubgroupID * NACC + i] = l;
            }
        }
        barrier();
        const uint groups = gl_NumSubgroups;
#else
        for (uint i = 0u; i < NACC; i++) {
            red[tid * NACC + i] = acc[i];
            if (PRECISE) red_lo[tid * NACC + i] = acc_lo[i];
        }
        barrier();
        const uint groups = WG;
#endif
        for (uint i = tid; i < NACC; i += WG) {
            float h = 0.0, l = 0.0;
            for (uint g = 0u; g < groups; g++) {
                if (PRECISE) df_add(h, l, red[g * NACC + i], red_lo[g * NACC + i]);
                else h += red[g * NACC + i];
            }
            red[i] = h; // group 0's slot, read by nobody else after the barrier below
            if (PRECISE) red_lo[i] = l;
        }
        barrier();
        for (uint q = tid; q < MT * NCO; q += WG) {
            const uint t = q / NCO, jc = q % NCO, c = c0 + jc, r = rb + t;
            if (r >= r0 + cnt || c >= pc.n_out) continue;
            float out_v = 0.0;
            if (xr[t] != NONE) {
                const uint ig = t * NRW + jc, iu = ig + NRW / 2u;
                const float g = finish_acc(e, w_row_of(c, false), xr[t], red[ig] * fold, PRECISE ? red_lo[ig] * fold : 0.0);
                const float u = GATED ? finish_acc(e, w_row_of(c, true), xr[t], red[iu] * fold, PRECISE ? red_lo[iu] * fold : 0.0) : 0.0;
                out_v = epilogue(g, u);
            }
            y_store(r, c, out_v);
        }
        barrier();
    }
    // Padding rows of the group are zeros.
    for (uint q = tid; q < (end - r0 - cnt) * NCO; q += WG) {
        const uint r = r0 + cnt + q / NCO, c = c0 + q % NCO;
        if (c < pc.n_out) y_store(r, c, 0.0);
    }
}
