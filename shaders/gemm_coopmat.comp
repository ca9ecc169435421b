#version 450
// Cooperative-matrix GEMM for prefill: each workgroup computes a BM (tokens) x BN (weight rows) block of Y
// (128 x 128 by default). Slices of 32 along K are decoded (FP8/FP4 -> f32 -> scaled -> fp16) into shared memory,
// then SG_M x SG_N subgroups, each owning (16 FM) x (16 FN) of the block, multiply 16x16x16 fp16 tiles with fp32
// accumulators. Operands past 65504 after scaling overflow fp16: the price of fp16 matrix units. Built twice:
// -DFP8_NV_COOPMAT (GL_NV_cooperative_matrix) and -DFP8_KHR_COOPMAT (GL_KHR_cooperative_matrix) where a
// compiler accepts it. Weights stay quantized in memory; only a BN x 32 slice exists in fp16, in shared memory.
#extension GL_GOOGLE_include_directive : enable // glslangValidator needs it said; glslc implies it
#extension GL_EXT_shader_explicit_arithmetic_types_float16 : require
#extension GL_KHR_memory_scope_semantics : require
#extension GL_KHR_shader_subgroup_basic : require
#if defined(FP8_EMULATE_COOPMAT)
// Test twin for devices without matrix units (lavapipe): the same decode, packing and shared-memory layout,
// with the 16x16 multiplies done by plain FMA from the fp16 slices. FP8_VK_EMULATE_COOPMAT=1 routes the
// cooperative-matrix paths here, so their host side and decode are tested where no GPU is.
#elif defined(FP8_NV_COOPMAT)
#extension GL_NV_cooperative_matrix : require
#define MAT_A fcoopmatNV<16, gl_ScopeSubgroup, 16, 16>
#define MAT_B fcoopmatNV<16, gl_ScopeSubgroup, 16, 16>
#define MAT_C fcoopmatNV<32, gl_ScopeSubgroup, 16, 16>
#define LOAD_A(m, arr, off, ld) coopMatLoadNV(m, arr, off, ld, false)
#define LOAD_B(m, arr, off, ld) coopMatLoadNV(m, arr, off, ld, true)
#define STORE_C(m, arr, off, ld) coopMatStoreNV(m, arr, off, ld, false)
#define MMA(a, b, c) coopMatMulAddNV(a, b, c)
#else
#extension GL_KHR_cooperative_matrix : require
#define MAT_A coopmat<float16_t, gl_ScopeSubgroup, 16, 16, gl_MatrixUseA>
#define MAT_B coopmat<float16_t, gl_ScopeSubgroup, 16, 16, gl_MatrixUseB>
#define MAT_C coopmat<float, gl_ScopeSubgroup, 16, 16, gl_MatrixUseAccumulator>
#define LOAD_A(m, arr, off, ld) coopMatLoad(m, arr, off, ld, gl_CooperativeMatrixLayoutRowMajor)
#define LOAD_B(m, arr, off, ld) coopMatLoad(m, arr, off, ld, gl_CooperativeMatrixLayoutColumnMajor)
#define STORE_C(m, arr, off, ld) coopMatStore(m, arr, off, ld, gl_CooperativeMatrixLayoutRowMajor)
#define MMA(a, b, c) coopMatMulAdd(a, b, c)
#endif

#include "gemm_common.glsl"

layout(local_size_x_id = 0) in;                       // SG_M * SG_N subgroups of 32
layout(constant_id = 10) const bool W_ALIGN16 = true; // every W row starts on 16 bytes
layout(constant_id = 11) const bool X_VEC = true;     // X rows aligned for 16-byte loads
// Tile shape (lib/vulkan/vk_gemm.c checks the limits; FP8_VK_COOPMAT_TILE=sgm,sgn,fm,fn tries others):
layout(constant_id = 12) const uint SG_M = 2;         // subgroups along M (tokens)
layout(constant_id = 13) const uint SG_N = 4;         // subgroups along N (weight rows)
layout(constant_id = 14) const uint FM = 4;           // 16x16 tiles per subgroup along M, at most 4
layout(constant_id = 15) const uint FN = 2;           // along N, at most 4

const uint BM = SG_M * FM * 16u, BN = SG_N * FN * 16u, BK = 32u;
const uint UNITS = BK / 8u;    // 8 fp16 per unit: one uvec4 (GL_NV_cooperative_matrix loads uvec4 arrays as packed fp16)
// Row stride in uvec4: 5 = 80 bytes, which keeps the 16-byte rows a matrix load reads on distinct banks.
const uint LD = UNITS + 1u;
const uint THREADS = gl_WorkGroupSize.x;
const uint PER_A = BM * UNITS / THREADS, PER_B = BN * UNITS / THREADS; // units per thread and slice, at most 8
shared uvec4 As[BM * LD];      // X slice, row-major [m][k], fp16 pairs
shared uvec4 Bs[BN * LD];      // W slice, [n][k] = column-major K x N
shared float Cs[SG_M * SG_N * 256u]; // per-subgroup 16x16 staging for the output conversion

uvec4 pack8(vec4 lo, vec4 hi)
{
    return uvec4(packHalf2x16(lo.xy), packHalf2x16(lo.zw), packHalf2x16(hi.xy), packHalf2x16(hi.zw));
}

uint w_word(uint a)
{
    if (W_ALIGN16) return w32[a >> 2];
    return BYTE_AT(w32, a) | (BYTE_AT(w32, a + 1u) << 8) | (BYTE_AT(w32, a + 2u) << 16) | (BYTE_AT(w32, a + 3u) << 24);
}

uint x_word(uint a)
{
    if (X_VEC) return x32[a >> 2];
    return BYTE_AT(x32, a) | (BYTE_AT(x32, a + 1u) << 8) | (BYTE_AT(x32, a + 2u) << 16) | (BYTE_AT(x32, a + 3u) << 24);
}

// A unit is 8 consecutive k of one row. Its raw bytes are loaded a slice ahead of their decode, so that global
// latency overlaps the matrix multiplies of the current slice. Units at the matrix edges load nothing here and
// are decoded element by element instead.
bool w_full(uint n, uint k) { return n < pc.N && k + 8u <= pc.K; }
bool x_full(uint m, uint k) { return m < pc.M && k + 8u <= pc.K && (X_VEC || XDT <= DT_E5M2FNUZ); }

uvec2 w_raw(uint n, uint k)
{
    if (!w_full(n, k)) return uvec2(0u);
    const uint row = pc.w_off + n * pc.w_stride;
    if (WDT == DT_E2M1) return uvec2(w_word(row + (k >> 1)), 0u);
    return uvec2(w_word(row + k), w_word(row + k + 4u));
}

void x_raw(uint m, uint k, out uvec4 a, out uvec4 b)
{
    a = b = uvec4(0u);
    if (!x_full(m, k)) return;
    const uint i = pc.x_off + m * pc.x_stride + k;
    if (XDT == DT_F16 || XDT == DT_BF16) {
        a = x128[i >> 3];
    } else if (XDT == DT_F32) {
        a = x128[i >> 2];
        b = x128[(i >> 2) + 1u];
    } else {
        a = uvec4(x_word(i), x_word(i + 4u), 0u, 0u);
    }
}

// Weights (n, k .. k+7), decoded and scaled, as fp16; zero outside the matrix.
uvec4 w_unit(uint n, uint k, uvec2 raw)
{
    if (!w_full(n, k)) {
        float v[8];
        for (uint i = 0u; i < 8u; i++) v[i] = (n < pc.N && k + i < pc.K) ? w_elem(n, k + i) * w_scale(n, k + i) * pc.w_ts : 0.0;
        return pack8(vec4(v[0], v[1], v[2], v[3]), vec4(v[4], v[5], v[6], v[7]));
    }
    vec4 lo, hi;
    if (WDT == DT_E2M1) {
        dec8_e2m1(raw.x, EXACT, lo, hi);
    } else {
        lo = dec4_fp8(WDT, raw.x, EXACT);
        hi = dec4_fp8(WDT, raw.y, EXACT);
    }
    float f = dec_fold(WDT) * pc.w_ts;
    if (WS_MODE == SM_ELEM) {
        lo *= vec4(w_scale(n, k), w_scale(n, k + 1u), w_scale(n, k + 2u), w_scale(n, k + 3u));
        hi *= vec4(w_scale(n, k + 4u), w_scale(n, k + 5u), w_scale(n, k + 6u), w_scale(n, k + 7u));
    } else if (WS_MODE != SM_NONE) {
        f *= w_scale(n, k); // ROW: one per row; CHUNK: k..k+7 lie in one 16-aligned chunk
    }
    return pack8(lo * f, hi * f);
}

// Activations (m, k .. k+7), decoded and scaled, as fp16; zero outside the matrix.
uvec4 x_unit(uint m, uint k, uvec4 a, uvec4 b)
{
    if (!x_full(m, k)) {
        float v[8];
        for (uint i = 0u; i < 8u; i++) v[i] = (m < pc.M && k + i < pc.K) ? x_elem(m, k + i) * x_scale(m, k + i) * pc.x_ts : 0.0;
        return pack8(vec4(v[0], v[1], v[2], v[3]), vec4(v[4], v[5], v[6], v[7]));
    }
    vec4 lo, hi;
    if (XDT == DT_F16) {
        if (pc.x_ts == 1.0) return a; // already fp16: copy
        lo = vec4(unpackHalf2x16(a.x), unpackHalf2x16(a.y));
        hi = vec4(unpackHalf2x16(a.z), unpackHalf2x16(a.w));
    } else if (XDT == DT_F32) {
        lo = uintBitsToFloat(a);
        hi = uintBitsToFloat(b);
    } else if (XDT == DT_BF16) {
        lo = uintBitsToFloat(uvec4(a.x << 16, a.x & 0xFFFF0000u, a.y << 16, a.y & 0xFFFF0000u));
        hi = uintBitsToFloat(uvec4(a.z << 16, a.z & 0xFFFF0000u, a.w << 16, a.w & 0xFFFF0000u));
    } else {
        lo = dec4_fp8(XDT, a.x, EXACT) * dec_fold(XDT);
        hi = dec4_fp8(XDT, a.y, EXACT) * dec_fold(XDT);
    }
    float f = pc.x_ts;
    if (XS_MODE == SM_ELEM) {
        lo *= vec4(x_scale(m, k), x_scale(m, k + 1u), x_scale(m, k + 2u), x_scale(m, k + 3u));
        hi *= vec4(x_scale(m, k + 4u), x_scale(m, k + 5u), x_scale(m, k + 6u), x_scale(m, k + 7u));
    } else if (XS_MODE != SM_NONE) {
        f *= x_scale(m, k);
    }
    return pack8(lo * f, hi * f);
}

void main()
{
    const uint tid = gl_LocalInvocationID.x;
    const uint sg = gl_SubgroupID, lane = gl_SubgroupInvocationID;
    const uint n0 = gl_WorkGroupID.x * BN, m0 = gl_WorkGroupID.y * BM;
    const uint sm = (sg / SG_N) * FM * 16u, sn = (sg % SG_N) * FN * 16u; // this subgroup's part of the block

#ifdef FP8_EMULATE_COOPMAT
    const uint OUT = BM * BN / THREADS; // outputs per thread, at most 128
    float acc[128];
    for (uint q = 0u; q < OUT; q++) acc[q] = 0.0;
#else
    MAT_C acc[16];
    for (uint i = 0u; i < FM * FN; i++) acc[i] = MAT_C(0.0);
#endif

    // This thread's units of each slice: u = tid + THREADS i, row u / UNITS, unit u % UNITS.
    uvec4 xa[8], xb[8];
    uvec2 wr[8];
    for (uint i = 0u; i < PER_A; i++) {
        const uint u = tid + THREADS * i;
        x_raw(m0 + u / UNITS, (u % UNITS) * 8u, xa[i], xb[i]);
    }
    for (uint i = 0u; i < PER_B; i++) {
        const uint u = tid + THREADS * i;
        wr[i] = w_raw(n0 + u / UNITS, (u % UNITS) * 8u);
    }

    for (uint k0 = 0u; k0 < pc.K; k0 += BK) {
        for (uint i = 0u; i < PER_A; i++) {
            const uint u = tid + THREADS * i, row = u / UNITS;
            As[row * LD + u % UNITS] = x_unit(m0 + row, k0 + (u % UNITS) * 8u, xa[i], xb[i]);
        }
        for (uint i = 0u; i < PER_B; i++) {
            const uint u = tid + THREADS * i, row = u / UNITS;
            Bs[row * LD + u % UNITS] = w_unit(n0 + row, k0 + (u % UNITS) * 8u, wr[i]);
        }
        barrier();
        if (k0 + BK < pc.K) {
            for (uint i = 0u; i < PER_A; i++) {
                const uint u = tid + THREADS * i;
                x_raw(m0 + u / UNITS, k0 + BK + (u % UNITS) * 8u, xa[i], xb[i]);
            }
            for (uint i = 0u; i < PER_B; i++) {
                const uint u = tid + THREADS * i;
                wr[i] = w_raw(n0 + u / UNITS, k0 + BK + (u % UNITS) * 8u);
            }
        }
#ifdef FP8_EMULATE_COOPMAT
        for (uint q = 0u; q < OUT; q++) {
            const uint e = tid + THREADS * q, ml = e / BN, nl = e % BN;
            float sum = 0.0;
            for (uint k = 0u; k < BK; k++) {
                const uint word = (k % 8u) / 2u, half_ = k & 1u;
                sum = fma(unpackHalf2x16(As[ml * LD + k / 8u][word])[half_],
                          unpackHalf2x16(Bs[nl * LD + k / 8u][word])[half_], sum);
            }
            acc[q] += sum;
        }
#else
        for (uint kk = 0u; kk < BK / 16u; kk++) {
            MAT_A a[4];
            MAT_B b[4];
            for (uint i = 0u; i < FM; i++) LOAD_A(a[i], As, (sm + 16u * i) * LD + 2u * kk, LD);
            for (uint j = 0u; j < FN; j++) LOAD_B(b[j], Bs, (sn + 16u * j) * LD + 2u * kk, LD);
            for (uint i = 0u; i < FM; i++)
                for (uint j = 0u; j < FN; j++) acc[i * FN + j] = MMA(a[i], b[j], acc[i * FN + j]);
        }
#endif
        barrier();
    }

#ifdef FP8_EMULATE_COOPMAT
    for (uint q = 0u; q < OUT; q++) {
        const uint e = tid + THREADS * q, m = m0 + e / BN, n = n0 + e % BN;
        if (m < pc.M && n < pc.N) y_store(m, n, acc[q] + bias_at(n));
    }
#else
    // Each 16x16 tile goes through this subgroup's staging area: bounds, bias and the output dtype.
    const uint base = sg * 256u;
    for (uint i = 0u; i < FM; i++) {
        for (uint j = 0u; j < FN; j++) {
            STORE_C(acc[i * FN + j], Cs, base, 16u);
            subgroupMemoryBarrierShared();
            subgroupBarrier();
            for (uint e = lane; e < 256u; e += gl_SubgroupSize) {
                const uint m = m0 + sm + 16u * i + e / 16u, n = n0 + sn + 16u * j + e % 16u;
                if (m < pc.M && n < pc.N) y_store(m, n, Cs[base + e] + bias_at(n));
            }
            subgroupBarrier();
        }
    }
#endif
}
