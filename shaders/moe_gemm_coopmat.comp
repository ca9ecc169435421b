#version 450
// Grouped GEMM over a plan's row tiles with cooperative matrices (prefill, row_align 16, 32, 64 or 128):
// one workgroup per (tile of BM = row_align rows of one expert, block of weight rows). K advances in slices of
// BK (16, 32 or 64) through STAGES shared-memory buffers, as in gemm_coopmat.comp: while the subgroups multiply
// one slice, the raw bytes of the next (16 weights or 8 activations per unit, X rows gathered through
// row_token) are in flight, and they are decoded (FP8/FP4 -> f32 -> block scales -> fp16) into shared memory
// afterwards: the other buffer (one barrier per slice), or with one buffer after a second barrier. SG_M x SG_N subgroups of 32, each owning (16 FM) x (16 FN) of the block,
// multiply 16x16x16 fp16 tiles into fp32 accumulators. Raw codes are exact in fp16, so per-channel and per-token scales, tensor scales and
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
layout(constant_id = 24) const bool W_ALIGN16 = false; // weight rows start on 16 bytes (one load per FP8 unit)
layout(constant_id = 25) const uint BK = 32u;         // K per slice: 16, 32 or 64 (the host checks shared memory)
// The epilogue from registers through the accumulator layout probe (coopmat_layout.glsl), or every tile
// staged through shared memory (FP8_VK_MOE_STAGED_EPILOGUE=1, and where the probe finds no usable layout).
layout(constant_id = 26) const bool REG_EPILOGUE = true;
layout(constant_id = 27) const uint STAGES = 2u;      // shared-memory slice buffers: 1 or 2

const uint BM = SG_M * FM * 16u, BN = SG_N * FN * 16u;
// The accumulator layout probe (coopmat_layout.glsl) runs after the K loop for FP8 activations, so that its
// positions hold no registers while the slices stream: on the H100 that took 95-97 registers to 88-90 and the
// W8A8 layers 0.92x the time (run 92), while E2M1 weights with bf16 activations ran 1.10x slower that way.
const bool PROBE_LATE = XDT >= DT_E4M3FN && XDT <= DT_E5M2FNUZ;
const uint BNO = GATED ? BN / 2u : BN;               // output columns per block
const uint UNITS = BK / 8u;    // 8 fp16 per unit of shared memory: one uvec4
const uint LD = UNITS + 1u;    // row stride in uvec4 (rows on distinct banks for the matrix loads)
const uint THREADS = SG_M * SG_N * 32u;
const uint A_UNITS = BM * UNITS;          // 8 activations each
const uint B_UNITS = BN * (BK / 16u);     // 16 weights each
const uint PER_A = (A_UNITS + THREADS - 1u) / THREADS;
const uint PER_B = (B_UNITS + THREADS - 1u) / THREADS;
shared uvec4 As[STAGES * BM * LD]; // X slices, row-major [m][k], fp16 pairs
shared uvec4 Bs[STAGES * BN * LD]; // W slices, [n][k] = column-major K x N
#ifndef FP8_EMULATE_COOPMAT
shared float Cs[SG_M * SG_N * 256u]; // per-subgroup 16x16 area: the layout probe, and the staged epilogue
#include "coopmat_layout.glsl"
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
// Local output column of element q (row-major in 16 x 16) of tile column j of the subgroup at column sn.
uint out_col(uint sn, uint j, uint q) { return GATED ? (sn / FN) * (FN / 2u) + 16u * j + q % 16u : sn + 16u * j + q % 16u; }

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

// A weight unit is 16 consecutive k of one weight row, an activation unit 8. Their raw bytes (and, where one
// scale covers the unit, the scale) are loaded a slice ahead of their decode. Units at the edges, unaligned
// E2M1 rows and per-element activation scales load nothing here and are decoded element by element instead.
bool w_full(uint n, uint k) { return n != NONE && k + 16u <= pc.k && (WDT != DT_E2M1 || W_ALIGN4); }
bool x_full(uint xr, uint k) { return X_VEC && xr != NONE && k + 8u <= pc.k && XS_MODE != SM_ELEM; }

uvec4 w_raw(uint e, uint n, uint k)
{
    if (!w_full(n, k)) return uvec4(0u);
    const uint row = w_row_base(e, n);
    if (WDT == DT_E2M1) return uvec4(w_word(row + (k >> 1)), w_word(row + (k >> 1) + 4u), 0u, 0u);
    if (W_ALIGN16) return w128[(row + k) >> 4];
    return uvec4(w_word(row + k), w_word(row + k + 4u), w_word(row + k + 8u), w_word(row + k + 12u));
}

void x_raw(uint xr, uint k, out uvec4 a, out uvec4 b)
{
    a = b = uvec4(0u);
    if (!x_full(xr, k)) return;
    const uint i = pc.x_off + xr * pc.x_stride + k;
    if (XDT == DT_F16 || XDT == DT_BF16) {
        a = x128[i >> 3];
    } else if (XDT == DT_F32) {
        a = x128[i >> 2];
        b = x128[(i >> 2) + 1u];
    } else {
        a = uvec4(x32[i >> 2], x32[(i >> 2) + 1u], 0u, 0u);
    }
}

// Weights (n, k .. k+15) of expert e as fp16 (raw codes times fold and the block scales) from their raw bytes
// and the unit's scale s (CHUNK mode): k..k+7 in lo, k+8..k+15 in hi; zero outside.
void w_unit(uint e, uint n, uint k, uvec4 raw, float s, out uvec4 lo, out uvec4 hi)
{
    if (!w_full(n, k)) {
        float v[16];
        for (uint i = 0u; i < 16u; i++) v[i] = n != NONE && k + i < pc.k ? w_elem(e, n, k + i) * w_kscale(e, n, k + i) : 0.0;
        lo = pack8(vec4(v[0], v[1], v[2], v[3]), vec4(v[4], v[5], v[6], v[7]));
        hi = pack8(vec4(v[8], v[9], v[10], v[11]), vec4(v[12], v[13], v[14], v[15]));
        return;
    }
    vec4 v0, v1, v2, v3;
    if (WDT == DT_E2M1) {
        dec8_e2m1(raw.x, EXACT, v0, v1);
        dec8_e2m1(raw.y, EXACT, v2, v3);
    } else {
        dec16_fp8(WDT, raw, EXACT, v0, v1, v2, v3);
    }
    const float f = dec_fold(WDT);
    if (WS_MODE == SM_ELEM) {
        v0 *= vec4(w_kscale(e, n, k), w_kscale(e, n, k + 1u), w_kscale(e, n, k + 2u), w_kscale(e, n, k + 3u));
        v1 *= vec4(w_kscale(e, n, k + 4u), w_kscale(e, n, k + 5u), w_kscale(e, n, k + 6u), w_kscale(e, n, k + 7u));
        v2 *= vec4(w_kscale(e, n, k + 8u), w_kscale(e, n, k + 9u), w_kscale(e, n, k + 10u), w_kscale(e, n, k + 11u));
        v3 *= vec4(w_kscale(e, n, k + 12u), w_kscale(e, n, k + 13u), w_kscale(e, n, k + 14u), w_kscale(e, n, k + 15u));
        lo = pack8(v0 * f, v1 * f);
        hi = pack8(v2 * f, v3 * f);
        return;
    }
    const float t = f * s; // CHUNK: k .. k+15 lie in one 16-aligned chunk
    lo = pack8(v0 * t, v1 * t);
    hi = pack8(v2 * t, v3 * t);
}

// Activations (row xr, k .. k+7) as fp16, times the block scales, from their raw bytes and the unit's scale s
// (CHUNK mode); zero for padding and past K.
uvec4 x_unit(uint xr, uint k, uvec4 a, uvec4 b, float s)
{
    if (!x_full(xr, k)) {
        float v[8];
        for (uint i = 0u; i < 8u; i++) v[i] = xr != NONE && k + i < pc.k ? x_elem(xr, k + i) * x_kscale(xr, k + i) : 0.0;
        return pack8(vec4(v[0], v[1], v[2], v[3]), vec4(v[4], v[5], v[6], v[7]));
    }
    vec4 lo, hi;
    if (XDT == DT_F16) {
        if (XS_MODE == SM_NONE || XS_MODE == SM_ROW) return a; // fp16 already: the bits as they are
        lo = vec4(f16_exact(a.x & 0xFFFFu), f16_exact(a.x >> 16), f16_exact(a.y & 0xFFFFu), f16_exact(a.y >> 16));
        hi = vec4(f16_exact(a.z & 0xFFFFu), f16_exact(a.z >> 16), f16_exact(a.w & 0xFFFFu), f16_exact(a.w >> 16));
    } else if (XDT == DT_BF16) {
        lo = uintBitsToFloat(uvec4(a.x << 16, a.x & 0xFFFF0000u, a.y << 16, a.y & 0xFFFF0000u));
        hi = uintBitsToFloat(uvec4(a.z << 16, a.z & 0xFFFF0000u, a.w << 16, a.w & 0xFFFF0000u));
    } else if (XDT == DT_F32) {
        lo = uintBitsToFloat(a);
        hi = uintBitsToFloat(b);
    } else {
        lo = dec4_fp8(XDT, a.x, EXACT) * dec_fold(XDT);
        hi = dec4_fp8(XDT, a.y, EXACT) * dec_fold(XDT);
    }
    if (XS_MODE == SM_CHUNK) { // k .. k+7 lie in one 16-aligned chunk
        lo *= s;
        hi *= s;
    }
    return pack8(lo, hi);
}

// This invocation's units of the slice in flight: the X row and weight row each reads (fixed for the whole
// K loop), their raw bytes and their scales.
uint x_src[PER_A], w_row[PER_B];
uvec4 xa[PER_A], xb[PER_A], wr[PER_B];
float xsc[PER_A], wsc[PER_B];

void load_slice(uint e, uint k0, uint tid)
{
    [[unroll]] for (uint i = 0u; i < PER_A; i++) {
        const uint u = tid + THREADS * i, k = k0 + (u % UNITS) * 8u;
        if (u < A_UNITS) {
            x_raw(x_src[i], k, xa[i], xb[i]);
            xsc[i] = XS_MODE == SM_CHUNK && x_full(x_src[i], k) ? x_kscale(x_src[i], k) : 1.0;
        }
    }
    [[unroll]] for (uint i = 0u; i < PER_B; i++) {
        const uint u = tid + THREADS * i, k = k0 + (u % (BK / 16u)) * 16u;
        if (u < B_UNITS) {
            wr[i] = w_raw(e, w_row[i], k);
            wsc[i] = WS_MODE == SM_CHUNK && w_full(w_row[i], k) ? w_kscale(e, w_row[i], k) : 1.0;
        }
    }
}

void store_slice(uint buf, uint e, uint k0, uint tid)
{
    [[unroll]] for (uint i = 0u; i < PER_A; i++) {
        const uint u = tid + THREADS * i;
        if (u < A_UNITS)
            As[buf * BM * LD + (u / UNITS) * LD + u % UNITS] = x_unit(x_src[i], k0 + (u % UNITS) * 8u, xa[i], xb[i], xsc[i]);
    }
    [[unroll]] for (uint i = 0u; i < PER_B; i++) {
        const uint u = tid + THREADS * i, row = u / (BK / 16u), c = u % (BK / 16u);
        if (u < B_UNITS) {
            uvec4 lo, hi;
            w_unit(e, w_row[i], k0 + c * 16u, wr[i], wsc[i], lo, hi);
            Bs[buf * BN * LD + row * LD + 2u * c] = lo;
            Bs[buf * BN * LD + row * LD + 2u * c + 1u] = hi;
        }
    }
}

// The expert of row tile t (NONE: nothing to do). Every invocation reads it from the plan; invocation 0 of
// the workgroup reports what is wrong with it.
uint tile_expert(uint t, uint r0, bool report)
{
    if (DENSE) return r0 < pc.m ? 0u : NONE;
    if (!plan_ok()) {
        if (report && gl_WorkGroupID.x == 0u && t == 0u) moe_error(ST_INVALID_ARGUMENT);
        return NONE;
    }
    const uint e = plan[tile_expert_at() + t];
    if (e != NONE && e >= pc.experts) {
        if (report) moe_error(ST_INVALID_ARGUMENT);
        return NONE;
    }
    return e != NONE && in_window(e) ? e : NONE;
}

// Y[r, c] for local output column cl from its gate (or only) sum g and up sum u; padding rows are written as
// zeros, rows past the dense m and columns past n_out are not written.
void emit(uint e, uint r, uint c, float g, float u)
{
    if ((DENSE && r >= pc.m) || c >= pc.n_out) return;
    const uint xr = source_row(r);
    float v = 0.0;
    if (xr != NONE) v = epilogue(finish(e, w_row_of(c, false), xr, g), GATED ? finish(e, w_row_of(c, true), xr, u) : 0.0);
    y_store(r, c, v);
}

void main()
{
    const uint tid = gl_LocalInvocationID.x;
    const uint c0 = gl_WorkGroupID.x * BNO;
    const uint t = gl_WorkGroupID.z * pc.grid_y + gl_WorkGroupID.y;
    const uint r0 = t * BM;
    const uint e = tile_expert(t, r0, tid == 0u);
    if (e == NONE) return; // the same for the whole workgroup

    [[unroll]] for (uint i = 0u; i < PER_A; i++) {
        const uint u = tid + THREADS * i;
        x_src[i] = u < A_UNITS ? source_row(r0 + u / UNITS) : NONE;
    }
    [[unroll]] for (uint i = 0u; i < PER_B; i++) {
        const uint u = tid + THREADS * i;
        w_row[i] = u < B_UNITS ? block_w_row(c0, u / (BK / 16u)) : NONE;
    }

#ifdef FP8_EMULATE_COOPMAT
    const uint OUT = BM * BNO / THREADS; // output columns (gate and up each) per thread
    float acc_g[64], acc_u[64];
    for (uint q = 0u; q < OUT; q++) acc_g[q] = acc_u[q] = 0.0;
#else
    const uint sg = gl_SubgroupID, lane = gl_SubgroupInvocationID;
    const uint sm = (sg / SG_N) * FM * 16u, sn = (sg % SG_N) * FN * 16u; // this subgroup's part of the block
    MAT_C acc[FM * FN];
    [[unroll]] for (uint i = 0u; i < FM * FN; i++) acc[i] = MAT_C(0.0);
    uint pos[CE];
    bool direct = false;
    if (!PROBE_LATE) direct = REG_EPILOGUE && probe_layout(sg * 256u, lane, pos);
#endif

    load_slice(e, 0u, tid);
    store_slice(0u, e, 0u, tid);
    barrier();
    uint buf = 0u;
    for (uint k0 = 0u; k0 < pc.k; k0 += BK) {
        const bool more = k0 + BK < pc.k;
        if (more) load_slice(e, k0 + BK, tid);
        const uint a_base = buf * BM * LD, b_base = buf * BN * LD;
#ifdef FP8_EMULATE_COOPMAT
        for (uint q = 0u; q < OUT; q++) {
            const uint o = tid + THREADS * q, ml = o / BNO, cl = o % BNO;
            const uint lg = block_row_of(cl, false), lu = block_row_of(cl, true);
            float sg_ = 0.0, su = 0.0;
            for (uint k = 0u; k < BK; k++) {
                const uint word = (k % 8u) / 2u, h = k & 1u;
                const float a = unpackHalf2x16(As[a_base + ml * LD + k / 8u][word])[h];
                sg_ = fma(a, unpackHalf2x16(Bs[b_base + lg * LD + k / 8u][word])[h], sg_);
                if (GATED) su = fma(a, unpackHalf2x16(Bs[b_base + lu * LD + k / 8u][word])[h], su);
            }
            acc_g[q] += sg_;
            acc_u[q] += su;
        }
#else
        [[unroll]] for (uint kk = 0u; kk < BK / 16u; kk++) {
            MAT_A a[FM];
            MAT_B b[FN];
            [[unroll]] for (uint i = 0u; i < FM; i++) LOAD_A(a[i], As, a_base + (sm + 16u * i) * LD + 2u * kk, LD);
            [[unroll]] for (uint j = 0u; j < FN; j++) LOAD_B(b[j], Bs, b_base + (sn + 16u * j) * LD + 2u * kk, LD);
            [[unroll]] for (uint i = 0u; i < FM; i++)
                [[unroll]] for (uint j = 0u; j < FN; j++) acc[i * FN + j] = MMA(a[i], b[j], acc[i * FN + j]);
        }
#endif
        const uint next = (buf + 1u) % STAGES;
        if (STAGES == 1u && more) barrier(); // every subgroup has read the one buffer before it is refilled
        if (more) store_slice(next, e, k0 + BK, tid);
        barrier();
        buf = next;
    }

#ifdef FP8_EMULATE_COOPMAT
    for (uint q = 0u; q < OUT; q++) {
        const uint o = tid + THREADS * q;
        emit(e, r0 + o / BNO, c0 + o % BNO, acc_g[q], acc_u[q]);
    }
#else
    if (PROBE_LATE) direct = REG_EPILOGUE && probe_layout(sg * 256u, lane, pos);
    // A gated subgroup's tile j (of FN/2) pairs with its up tile j + FN/2 over the same output columns.
    const uint JO = GATED ? FN / 2u : FN;
    if (direct) {
        [[unroll]] for (uint i = 0u; i < FM; i++)
            [[unroll]] for (uint j = 0u; j < JO; j++)
                [[unroll]] for (uint el = 0u; el < CE; el++)
                    emit(e, r0 + sm + 16u * i + pos[el] / 16u, c0 + out_col(sn, j, pos[el]),
                         acc[i * FN + j][el], GATED ? acc[i * FN + j + FN / 2u][el] : 0.0);
        return;
    }
    // Staged: the gate tile through this subgroup's area into registers, then the up tile.
    const uint base = sg * 256u;
    [[unroll]] for (uint i = 0u; i < FM; i++) {
        [[unroll]] for (uint j = 0u; j < JO; j++) {
            float g[8];
            STORE_C(acc[i * FN + j], Cs, base, 16u);
            subgroupMemoryBarrierShared();
            subgroupBarrier();
            [[unroll]] for (uint s = 0u; s < 8u; s++) g[s] = Cs[base + lane + 32u * s];
            subgroupBarrier();
            if (GATED) {
                STORE_C(acc[i * FN + j + FN / 2u], Cs, base, 16u);
                subgroupMemoryBarrierShared();
                subgroupBarrier();
            }
            [[unroll]] for (uint s = 0u; s < 8u; s++) {
                const uint q = lane + 32u * s;
                emit(e, r0 + sm + 16u * i + q / 16u, c0 + out_col(sn, j, q), g[s], GATED ? Cs[base + q] : 0.0);
            }
            subgroupBarrier();
        }
    }
#endif
}
