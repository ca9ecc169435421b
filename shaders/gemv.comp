#version 450
// GEMV for decode (small M): Y[m, n] = sum_k X[m, k] * W[n, k] (+ bias). A workgroup holds GROUPS groups of
// threads; each group computes NR rows for MT tokens (all of them up to 16, so that the weights are read once),
// splitting K over its threads. Every thread streams 16-byte loads of each of its rows (16 FP8 or 32 E2M1
// weights per load), UNROLL of them per row issued before any is used, decodes in registers; the groups sum
// with subgroupAdd where a group is whole subgroups (shared memory otherwise). Groups of one workgroup read the
// same activations at about the same time, so those come from L1 rather than L2.
// [[unroll]]: loops over register arrays must unroll, or the arrays (accumulators above all) go to local memory.
#extension GL_EXT_control_flow_attributes : require
#ifndef FP8_NO_SUBGROUP
#extension GL_KHR_shader_subgroup_basic : enable
#extension GL_KHR_shader_subgroup_arithmetic : enable
#endif

#include "gemm_common.glsl"

layout(local_size_x_id = 0) in;
layout(constant_id = 10) const uint NR = 4;        // weight rows per workgroup
layout(constant_id = 11) const uint MT = 1;        // tokens per workgroup (at most 16)
layout(constant_id = 12) const bool W_ALIGN16 = true;  // every W row starts on 16 bytes
layout(constant_id = 13) const bool X_VEC = true;      // X rows aligned for vector loads (16 bytes)
layout(constant_id = 14) const bool USE_SUBGROUP = true; // subgroupAdd (compiled without it: FP8_NO_SUBGROUP)
layout(constant_id = 15) const uint GROUPS = 1;    // row groups per workgroup (a divisor of its size)
layout(constant_id = 16) const uint UNROLL = 1;    // 16-byte loads per row and thread in flight together

const uint NACC = MT * NR;
const uint TG = gl_WorkGroupSize.x / GROUPS;       // threads per group
shared float red[gl_WorkGroupSize.x * NACC];

// 16 activations of token m from element k (k % 16 == 0), times the activation scale where it varies per element.
void load_x16(uint m, uint k, out vec4 v[4])
{
    uint i = pc.x_off + m * pc.x_stride + k;
    if (XDT == DT_F32 && X_VEC) {
        [[unroll]] for (uint j = 0u; j < 4u; j++) v[j] = uintBitsToFloat(x128[(i >> 2) + j]);
    } else if ((XDT == DT_F16 || XDT == DT_BF16) && X_VEC) {
        [[unroll]] for (uint j = 0u; j < 2u; j++) {
            uvec4 q = x128[(i >> 3) + j];
            if (XDT == DT_F16) {
                v[2u * j] = vec4(unpackHalf2x16(q.x), unpackHalf2x16(q.y));
                v[2u * j + 1u] = vec4(unpackHalf2x16(q.z), unpackHalf2x16(q.w));
            } else {
                v[2u * j] = uintBitsToFloat(uvec4(q.x << 16, q.x & 0xFFFF0000u, q.y << 16, q.y & 0xFFFF0000u));
                v[2u * j + 1u] = uintBitsToFloat(uvec4(q.z << 16, q.z & 0xFFFF0000u, q.w << 16, q.w & 0xFFFF0000u));
            }
        }
    } else if (XDT <= DT_E5M2FNUZ) {
        uvec4 q;
        LOAD16(x32, x128, i, X_VEC, q);
        float f = dec_fold(XDT);
        dec16_fp8(XDT, q, EXACT, v[0], v[1], v[2], v[3]);
        [[unroll]] for (uint j = 0u; j < 4u; j++) v[j] *= f;
    } else {
        [[unroll]] for (uint j = 0u; j < 4u; j++)
            v[j] = vec4(x_elem(m, k + 4u * j), x_elem(m, k + 4u * j + 1u), x_elem(m, k + 4u * j + 2u), x_elem(m, k + 4u * j + 3u));
    }
    if (XS_MODE == SM_ELEM)
        [[unroll]] for (uint j = 0u; j < 4u; j++)
            v[j] *= vec4(x_scale(m, k + 4u * j), x_scale(m, k + 4u * j + 1u), x_scale(m, k + 4u * j + 2u), x_scale(m, k + 4u * j + 3u));
}

// 16 weights (half h of a 16-byte load) of row n from element k, decoded (times 1/dec_fold), with the
// per-element scale applied and the per-chunk scale returned.
void decode_w16(uvec4 q, uint h, uint n, uint k, uint srow, out vec4 wv[4], out float wsc)
{
    if (WDT == DT_E2M1) {
        dec8_e2m1(h == 0u ? q.x : q.z, EXACT, wv[0], wv[1]);
        dec8_e2m1(h == 0u ? q.y : q.w, EXACT, wv[2], wv[3]);
    } else {
        dec16_fp8(WDT, q, EXACT, wv[0], wv[1], wv[2], wv[3]);
    }
    if (WS_MODE == SM_ELEM)
        [[unroll]] for (uint j = 0u; j < 4u; j++)
            wv[j] *= vec4(w_scale(n, k + 4u * j), w_scale(n, k + 4u * j + 1u), w_scale(n, k + 4u * j + 2u),
                          w_scale(n, k + 4u * j + 3u));
    wsc = WS_MODE == SM_CHUNK ? w_scale_at(srow + k / ws_bc()) : 1.0;
}

// One 16-byte load of each row (wq) at load index c: its weights times the activations, into acc.
void chunk(uint c, uvec4 wq[NR], uint rowbase, uint srow[NR], inout float acc[NACC])
{
    const uint epl = WDT == DT_E2M1 ? 32u : 16u;   // weights per 16-byte load
    const uint halves = WDT == DT_E2M1 ? 2u : 1u;  // 16-weight chunks per load
    const uint m0 = gl_WorkGroupID.y * MT;
    [[unroll]] for (uint h = 0u; h < halves; h++) {
        const uint k = c * epl + h * 16u;
        if (MT <= 2u) {
            // Few tokens: their activations stay in registers while each row is decoded in turn.
            vec4 xv[MT * 4u];
            float xsc[MT];
            [[unroll]] for (uint t = 0u; t < MT; t++) {
                vec4 v[4];
                const uint m = min(m0 + t, pc.M - 1u);
                load_x16(m, k, v);
                [[unroll]] for (uint j = 0u; j < 4u; j++) xv[t * 4u + j] = v[j];
                xsc[t] = XS_MODE == SM_CHUNK ? x_scale(m, k) : 1.0;
            }
            [[unroll]] for (uint r = 0u; r < NR; r++) {
                vec4 wv[4];
                float wsc;
                decode_w16(wq[r], h, min(rowbase + r, pc.N - 1u), k, srow[r], wv, wsc);
                [[unroll]] for (uint t = 0u; t < MT; t++) {
                    float p = dot(wv[0], xv[t * 4u]) + dot(wv[1], xv[t * 4u + 1u]) + dot(wv[2], xv[t * 4u + 2u]) +
                              dot(wv[3], xv[t * 4u + 3u]);
                    acc[t * NR + r] += p * (wsc * xsc[t]);
                }
            }
        } else {
            // Many tokens: the rows are decoded once and stay in registers while the tokens stream past.
            vec4 wv[NR * 4u];
            float wsc[NR];
            [[unroll]] for (uint r = 0u; r < NR; r++) {
                vec4 d[4];
                decode_w16(wq[r], h, min(rowbase + r, pc.N - 1u), k, srow[r], d, wsc[r]);
                [[unroll]] for (uint j = 0u; j < 4u; j++) wv[r * 4u + j] = d[j];
            }
            [[unroll]] for (uint t = 0u; t < MT; t++) {
                vec4 v[4];
                const uint m = min(m0 + t, pc.M - 1u);
                load_x16(m, k, v);
                const float xsc = XS_MODE == SM_CHUNK ? x_scale(m, k) : 1.0;
                [[unroll]] for (uint r = 0u; r < NR; r++) {
                    float p = dot(wv[r * 4u], v[0]) + dot(wv[r * 4u + 1u], v[1]) + dot(wv[r * 4u + 2u], v[2]) +
                              dot(wv[r * 4u + 3u], v[3]);
                    acc[t * NR + r] += p * (wsc[r] * xsc);
                }
            }
        }
    }
}

void main()
{
    const uint tid = gl_LocalInvocationID.x;
    const uint g = tid / TG, gt = tid % TG;         // this thread's group and its place in it
    const uint rowbase = gl_WorkGroupID.x * GROUPS * NR + g * NR;
    const uint m0 = gl_WorkGroupID.y * MT;
    const uint epl = WDT == DT_E2M1 ? 32u : 16u;
    const uint nloads = pc.K / epl;

    float acc[NACC];
    [[unroll]] for (uint i = 0u; i < NACC; i++) acc[i] = 0.0;

    // Rows and tokens past the edge compute on the last valid one and are not stored.
    uint rowb[NR], srow[NR];
    [[unroll]] for (uint r = 0u; r < NR; r++) {
        rowb[r] = pc.w_off + min(rowbase + r, pc.N - 1u) * pc.w_stride;
        srow[r] = w_scale_row(min(rowbase + r, pc.N - 1u));
    }

    // Rounds of UNROLL loads per row, all issued before the first is used.
    for (uint c0 = gt; c0 < nloads; c0 += TG * UNROLL) {
        uvec4 wq[UNROLL * NR];
        [[unroll]] for (uint u = 0u; u < UNROLL; u++) {
            const uint c = min(c0 + TG * u, nloads - 1u); // past the end: a load that stays inside, unused
            [[unroll]] for (uint r = 0u; r < NR; r++) LOAD16(w32, w128, rowb[r] + c * 16u, W_ALIGN16, wq[u * NR + r]);
        }
        [[unroll]] for (uint u = 0u; u < UNROLL; u++) {
            if (c0 + TG * u >= nloads) break;
            uvec4 q[NR];
            [[unroll]] for (uint r = 0u; r < NR; r++) q[r] = wq[u * NR + r];
            chunk(c0 + TG * u, q, rowbase, srow, acc);
        }
    }

    // The last K % epl weights: one element per thread, exact decode.
    const float inv_fold = 1.0 / dec_fold(WDT);
    for (uint k = nloads * epl + gt; k < pc.K; k += TG) {
        [[unroll]] for (uint r = 0u; r < NR; r++) {
            const uint n = min(rowbase + r, pc.N - 1u);
            float w = w_elem(n, k) * inv_fold;
            if (WS_MODE >= SM_CHUNK) w *= w_scale(n, k);
            [[unroll]] for (uint t = 0u; t < MT; t++) {
                const uint m = min(m0 + t, pc.M - 1u);
                float x = x_elem(m, k);
                if (XS_MODE >= SM_CHUNK) x *= x_scale(m, k);
                acc[t * NR + r] += w * x;
            }
        }
    }

    // Per group: partial sums in shared memory (one per subgroup where the group is whole subgroups, which
    // assumes subgroups are runs of consecutive invocations, as every implementation makes them; else one per
    // thread), then each of the GROUPS * NACC sums is added up by one thread.
    uint parts = TG;
#ifndef FP8_NO_SUBGROUP
    if (USE_SUBGROUP && TG % gl_SubgroupSize == 0u) {
        [[unroll]] for (uint i = 0u; i < NACC; i++) {
            float s = subgroupAdd(acc[i]);
            if (subgroupElect()) red[gl_SubgroupID * NACC + i] = s;
        }
        parts = TG / gl_SubgroupSize;
    } else
#endif
    {
        [[unroll]] for (uint i = 0u; i < NACC; i++) red[tid * NACC + i] = acc[i];
    }
    barrier();
    for (uint o = tid; o < GROUPS * NACC; o += gl_WorkGroupSize.x) {
        const uint og = o / NACC, oi = o % NACC, t = oi / NR, r = oi % NR;
        const uint n = gl_WorkGroupID.x * GROUPS * NR + og * NR + r, m = m0 + t;
        float total = 0.0;
        for (uint j = 0u; j < parts; j++) total += red[(og * parts + j) * NACC + oi];
        if (n < pc.N && m < pc.M) {
            float v = total * dec_fold(WDT) * pc.w_ts * pc.x_ts;
            if (WS_MODE == SM_ROW) v *= w_scale(n, 0u);
            if (XS_MODE == SM_ROW) v *= x_scale(m, 0u);
            y_store(m, n, v + bias_at(n));
        }
    }
}
