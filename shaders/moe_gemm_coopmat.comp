#version 450
// Grouped GEMM over a plan's row tiles with cooperative matrices (prefill, row_align 16, 32, 64 or 128):
// one workgroup per (tile of BM = row_align rows of one expert, block of weight rows). Slices of 32 along K are
// decoded (FP8/FP4 -> f32 -> block scales -> fp16) into shared memory, X rows gathered through row_token on the
// way; SG_M x SG_N subgroups of 32, each owning (16 FM) x (16 FN) of the block, multiply 16x16x16 fp16 tiles
// into fp32 accumulators. Raw codes are exact in fp16, so per-channel and per-token scales, tensor scales and
// the bias are applied after the sum in f32 (finish()); block scales that vary along K are applied before the
// fp16 conversion, which rounds them to 11 bits. Gated epilogues: a subgroup's FN tiles are FN/2 gate tiles
// and the FN/2 up tiles of the same output columns, so it finishes its columns on its own. Built with
// -DFP8_NV_COOPMAT, -DFP8_KHR_COOPMAT (where a compiler accepts it), and as a plain-FMA twin
// (-DFP8_EMULATE_COOPMAT) that tests the same decode, layout and epilogue on devices without matrix units
// (FP8_VK_EMULATE_COOPMAT=1).
#extension GL_GOOGLE_include_directive : enable // glslangValidator needs it said; glslc implies it
// [[unroll]]: loops over register arrays must unroll, or the arrays (accumulators above all) go to local memory.
#extension GL_EXT_control_flow_attributes : require
#extension GL_EXT_shader_explicit_arithmetic_types_float16 : require
#extension GL_KHR_memory_scope_semantics : require
#extension GL_KHR_shader_subgroup_basic : require
#if defined(FP8_EMULATE_COOPMAT)
#elif defined(FP8_NV_COOPMAT)
#extension GL_NV_cooperative_matrix : require
#define MAT_A fcoopmatNV<16, gl_ScopeSubgroup, 16, 16>
#define MAT_B fcoopmatNV<16, gl_ScopeSubgroup, 16, 16>
#define MAT_C fcoopmatNV<32, gl_ScopeSubgroup, 16, 16>
#define LOAD_A(m, arr, off, ld) coopMatLoadNV(m, arr, off, ld, false)
#define LOAD_B(m, arr, off, ld) coopMatLoadNV(m, arr, off, ld, true)
#define STORE_C(m, arr, off, ld) coopMatStoreNV(m, arr, off, ld, false)
#define MMA(a, b, c) coopMatMulAddNV(a, b, c)
#elif defined(FP8_KHR_COOPMAT)
#extension GL_KHR_cooperative_matrix : require
#define MAT_A coopmat<float16_t, gl_ScopeSubgroup, 16, 16, gl_MatrixUseA>
#define MAT_B coopmat<float16_t, gl_ScopeSubgroup, 16, 16, gl_MatrixUseB>
#define MAT_C coopmat<float, gl_ScopeSubgroup, 16, 16, gl_MatrixUseAccumulator>
#define LOAD_A(m, arr, off, ld) coopMatLoad(m, arr, off, ld, gl_CooperativeMatrixLayoutRowMajor)
#define LOAD_B(m, arr, off, ld) coopMatLoad(m, arr, off, ld, gl_CooperativeMatrixLayoutColumnMajor)
#define STORE_C(m, arr, off, ld) coopMatStore(m, arr, off, ld, gl_CooperativeMatrixLayoutRowMajor)
#define MMA(a, b, c) coopMatMulAdd(a, b, c)
#else
#error "build with FP8_NV_COOPMAT, FP8_KHR_COOPMAT or FP8_EMULATE_COOPMAT"
#endif

#include "moe_gemm_common.glsl"

layout(local_size_x_id = 0) in;                       // SG_M * SG_N subgroups of 32
layout(constant_id = 18) const uint SG_M = 2;         // subgroups along the tile's rows
layout(constant_id = 19) const uint SG_N = 4;         // subgroups along the weight rows
layout(constant_id = 20) const uint FM = 4;           // 16x16 tiles per subgroup along rows, at most 4
layout(constant_id = 21) const uint FN = 2;           // along weight rows, at most 4, even when gated
layout(constant_id = 22) const bool W_ALIGN4 = true;  // weight rows start on 4 bytes (word loads)
layout(constant_id = 23) const bool X_VEC = false;    // X rows aligned for 8-element vector loads

const uint BM = SG_M * FM * 16u, BN = SG_N * FN * 16u, BK = 32u;
const uint BNO = GATED ? BN / 2u : BN;               // output columns per block
const uint UNITS = BK / 8u;    // 8 fp16 per unit: one uvec4
const uint LD = UNITS + 1u;    // row stride in uvec4 (80 bytes: distinct banks for the matrix loads)
const uint THREADS = gl_WorkGroupSize.x;
const uint PER_B = (BN * UNITS + THREADS - 1u) / THREADS; // weight units per thread and slice, at most 8
shared uvec4 As[BM * LD];      // X slice, row-major [m][k], fp16 pairs
shared uvec4 Bs[BN * LD];      // W slice, [n][k] = column-major K x N
shared uint src_of[BM];
shared uint tile_e;
#ifndef FP8_EMULATE_COOPMAT
shared float Cs[SG_M * SG_N * 512u]; // per-subgroup staging of a gate tile and its up tile
#endif

uvec4 pack8(vec4 lo, vec4 hi)
{
    return uvec4(packHalf2x16(lo.xy), packHalf2x16(lo.zw), packHalf2x16(hi.xy), packHalf2x16(hi.zw));
}

// Weight row behind local row lr of the block (NONE past the edge). Gated: local rows [16 FN s, 16 FN (s+1))
// of subgroup column s hold FN/2 gate tiles, then the FN/2 up tiles of the same output columns.
uint block_w_row(uint c0, uint lr)
{
    if (!GATED) return c0 + lr < pc.n ? c0 + lr : NONE;
    const uint half_ = FN / 2u, s = lr / (16u * FN), j = (lr / 16u) % FN, r = lr % 16u;
    const bool up = j >= half_;
    const uint c = c0 + s * half_ * 16u + (up ? j - half_ : j) * 16u + r;
    return c < pc.n_out ? w_row_of(c, up) : NONE;
}
// The inverse for output columns: local row of (local output column cl, gate or up).
uint block_row_of(uint cl, bool up)
{
    if (!GATED) return cl;
    const uint half_ = FN / 2u, s = cl / (16u * half_), j = (cl % (16u * half_)) / 16u + (up ? half_ : 0u);
    return s * 16u * FN + j * 16u + cl % 16u;
}

uint w_word(uint a)
{
    if (W_ALIGN4) return w32[a >> 2];
    return BYTE_AT(w32, a) | (BYTE_AT(w32, a + 1u) << 8) | (BYTE_AT(w32, a + 2u) << 16) | (BYTE_AT(w32, a + 3u) << 24);
}

// Scale of weight element (n, k) that varies along K (block scales), or 1.
float w_kscale(uint e, uint n, uint k)
{
    return WS_MODE == SM_CHUNK || WS_MODE == SM_ELEM ? w_scale_at(w_scale_row(e, n) + k / WS_BC) : 1.0;
}
float x_kscale(uint xr, uint k)
{
    return XS_MODE == SM_CHUNK || XS_MODE == SM_ELEM ? x_scale_at(x_scale_row(xr) + k / XS_BC) : 1.0;
}

// Weights (n, k .. k+7) of expert e as fp16 (raw codes times fold and the block scales); zero outside.
uvec4 w_unit(uint e, uint n, uint k)
{
    vec4 lo, hi;
    if (n == NONE) return uvec4(0u);
    if (k + 8u > pc.k || (WDT == DT_E2M1 && !W_ALIGN4)) {
        float v[8];
        for (uint i = 0u; i < 8u; i++) v[i] = k + i < pc.k ? w_elem(e, n, k + i) * w_kscale(e, n, k + i) : 0.0;
        return pack8(vec4(v[0], v[1], v[2], v[3]), vec4(v[4], v[5], v[6], v[7]));
    }
    const uint row = w_row_base(e, n);
    if (WDT == DT_E2M1) {
        dec8_e2m1(w_word(row + (k >> 1)), EXACT, lo, hi);
    } else {
        lo = dec4_fp8(WDT, w_word(row + k), EXACT);
        hi = dec4_fp8(WDT, w_word(row + k + 4u), EXACT);
    }
    const float f = dec_fold(WDT);
    if (WS_MODE == SM_ELEM) {
        lo *= vec4(w_kscale(e, n, k), w_kscale(e, n, k + 1u), w_kscale(e, n, k + 2u), w_kscale(e, n, k + 3u));
        hi *= vec4(w_kscale(e, n, k + 4u), w_kscale(e, n, k + 5u), w_kscale(e, n, k + 6u), w_kscale(e, n, k + 7u));
        return pack8(lo * f, hi * f);
    }
    const float s = f * w_kscale(e, n, k); // CHUNK: k .. k+7 lie in one 16-aligned chunk
    return pack8(lo * s, hi * s);
}

// Activations (row xr, k .. k+7) as fp16, times the block scales; zero for padding and past K.
uvec4 x_unit(uint xr, uint k)
{
    if (X_VEC && xr != NONE && k + 8u <= pc.k && XS_MODE != SM_ELEM) {
        const uint i = pc.x_off + xr * pc.x_stride + k;
        vec4 lo, hi;
        if (XDT == DT_F16) {
            const uvec4 a = x128[i >> 3];
            if (XS_MODE == SM_NONE || XS_MODE == SM_ROW) return a; // fp16 already: the bits as they are
            lo = vec4(f16_exact(a.x & 0xFFFFu), f16_exact(a.x >> 16), f16_exact(a.y & 0xFFFFu), f16_exact(a.y >> 16));
            hi = vec4(f16_exact(a.z & 0xFFFFu), f16_exact(a.z >> 16), f16_exact(a.w & 0xFFFFu), f16_exact(a.w >> 16));
        } else if (XDT == DT_BF16) {
            const uvec4 a = x128[i >> 3];
            lo = uintBitsToFloat(uvec4(a.x << 16, a.x & 0xFFFF0000u, a.y << 16, a.y & 0xFFFF0000u));
            hi = uintBitsToFloat(uvec4(a.z << 16, a.z & 0xFFFF0000u, a.w << 16, a.w & 0xFFFF0000u));
        } else if (XDT == DT_F32) {
            lo = uintBitsToFloat(x128[i >> 2]);
            hi = uintBitsToFloat(x128[(i >> 2) + 1u]);
        } else {
            lo = dec4_fp8(XDT, x32[i >> 2], EXACT) * dec_fold(XDT);
            hi = dec4_fp8(XDT, x32[(i >> 2) + 1u], EXACT) * dec_fold(XDT);
        }
        const float s = x_kscale(xr, k); // CHUNK: k .. k+7 lie in one 16-aligned chunk
        return pack8(lo * s, hi * s);
    }
    float v[8];
    for (uint i = 0u; i < 8u; i++) v[i] = xr != NONE && k + i < pc.k ? x_elem(xr, k + i) * x_kscale(xr, k + i) : 0.0;
    return pack8(vec4(v[0], v[1], v[2], v[3]), vec4(v[4], v[5], v[6], v[7]));
}

void main()
{
    const uint tid = gl_LocalInvocationID.x;
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
    for (uint i = tid; i < BM; i += THREADS) src_of[i] = source_row(r0 + i);
    barrier();

#ifdef FP8_EMULATE_COOPMAT
    const uint OUT = BM * BNO / THREADS; // output columns (gate and up each) per thread
    float acc_g[64], acc_u[64];
    for (uint q = 0u; q < OUT; q++) acc_g[q] = acc_u[q] = 0.0;
#else
    const uint sg = gl_SubgroupID, lane = gl_SubgroupInvocationID;
    const uint sm = (sg / SG_N) * FM * 16u, sn = (sg % SG_N) * FN * 16u; // this subgroup's part of the block
    MAT_C acc[16];
    [[unroll]] for (uint i = 0u; i < FM * FN; i++) acc[i] = MAT_C(0.0);
#endif
    uint brow[8];
    [[unroll]] for (uint i = 0u; i < PER_B; i++) brow[i] = block_w_row(c0, min((tid + THREADS * i) / UNITS, BN - 1u));

    for (uint k0 = 0u; k0 < pc.k; k0 += BK) {
        for (uint u = tid; u < BM * UNITS; u += THREADS)
            As[(u / UNITS) * LD + u % UNITS] = x_unit(src_of[u / UNITS], k0 + (u % UNITS) * 8u);
        [[unroll]] for (uint i = 0u; i < PER_B; i++) {
            const uint u = tid + THREADS * i, row = u / UNITS;
            if (u < BN * UNITS) Bs[row * LD + u % UNITS] = w_unit(e, brow[i], k0 + (u % UNITS) * 8u);
        }
        barrier();
#ifdef FP8_EMULATE_COOPMAT
        for (uint q = 0u; q < OUT; q++) {
            const uint o = tid + THREADS * q, ml = o / BNO, cl = o % BNO;
            const uint lg = block_row_of(cl, false), lu = block_row_of(cl, true);
            float sg_ = 0.0, su = 0.0;
            for (uint k = 0u; k < BK; k++) {
                const uint word = (k % 8u) / 2u, h = k & 1u;
                const float a = unpackHalf2x16(As[ml * LD + k / 8u][word])[h];
                sg_ = fma(a, unpackHalf2x16(Bs[lg * LD + k / 8u][word])[h], sg_);
                if (GATED) su = fma(a, unpackHalf2x16(Bs[lu * LD + k / 8u][word])[h], su);
            }
            acc_g[q] += sg_;
            acc_u[q] += su;
        }
#else
        [[unroll]] for (uint kk = 0u; kk < BK / 16u; kk++) {
            MAT_A a[4];
            MAT_B b[4];
            [[unroll]] for (uint i = 0u; i < FM; i++) LOAD_A(a[i], As, (sm + 16u * i) * LD + 2u * kk, LD);
            [[unroll]] for (uint j = 0u; j < FN; j++) LOAD_B(b[j], Bs, (sn + 16u * j) * LD + 2u * kk, LD);
            [[unroll]] for (uint i = 0u; i < FM; i++)
                [[unroll]] for (uint j = 0u; j < FN; j++) acc[i * FN + j] = MMA(a[i], b[j], acc[i * FN + j]);
        }
#endif
        barrier();
    }

    // Epilogue: padding rows are written as zeros; rows past the dense m are not written.
#ifdef FP8_EMULATE_COOPMAT
    for (uint q = 0u; q < OUT; q++) {
        const uint o = tid + THREADS * q, ml = o / BNO, cl = o % BNO, r = r0 + ml, c = c0 + cl;
        if ((DENSE && r >= pc.m) || c >= pc.n_out) continue;
        const uint xr = src_of[ml];
        float v = 0.0;
        if (xr != NONE) {
            const float g = finish(e, w_row_of(c, false), xr, acc_g[q]);
            v = epilogue(g, GATED ? finish(e, w_row_of(c, true), xr, acc_u[q]) : 0.0);
        }
        y_store(r, c, v);
    }
#else
    const uint base = sg * 512u;
    const uint JO = GATED ? FN / 2u : FN;
    // Each output tile (with its up tile when gated) goes through this subgroup's staging area. (The GEMM's
    // register epilogue through coopmat_layout.glsl gave wrong results here on the H100, see there.)
    [[unroll]] for (uint i = 0u; i < FM; i++) {
        [[unroll]] for (uint j = 0u; j < JO; j++) {
            STORE_C(acc[i * FN + j], Cs, base, 16u);
            if (GATED) STORE_C(acc[i * FN + j + FN / 2u], Cs, base + 256u, 16u);
            subgroupMemoryBarrierShared();
            subgroupBarrier();
            for (uint q = lane; q < 256u; q += gl_SubgroupSize) {
                const uint ml = sm + 16u * i + q / 16u, r = r0 + ml;
                // Local output column of this tile element: invert the block's row layout.
                const uint cl = GATED ? (sn / FN) * (FN / 2u) + 16u * j + q % 16u : sn + 16u * j + q % 16u;
                const uint c = c0 + cl;
                if ((DENSE && r >= pc.m) || c >= pc.n_out) continue;
                const uint xr = src_of[ml];
                float v = 0.0;
                if (xr != NONE) {
                    const float g = finish(e, w_row_of(c, false), xr, Cs[base + q]);
                    v = epilogue(g, GATED ? finish(e, w_row_of(c, true), xr, Cs[base + 256u + q]) : 0.0);
                }
                y_store(r, c, v);
            }
            subgroupBarrier();
        }
    }
#endif
}
