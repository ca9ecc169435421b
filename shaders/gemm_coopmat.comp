#version 450
// Cooperative-matrix GEMM for prefill: each workgroup computes a BM (tokens) x BN (weight rows) block of Y
// (128 x 128 by default). SG_M x SG_N subgroups each own (16 FM) x (16 FN) of it and multiply 16x16x16 fp16
// tiles into fp32 accumulators. K advances in slices of BK (16, 32 or 64): while the subgroups multiply one
// slice, the raw bytes of the next are in flight from global memory (in registers), and they are decoded into
// shared memory afterwards. With STAGES = 2 they go to a second buffer (one barrier per slice); with one
// buffer, which lets a 64-deep slice fit 48 KiB, a second barrier waits until every subgroup has read it.
// With W_DIRECT only the activations take that route: each subgroup loads its own weight rows into registers
// and builds its B fragments from them (see "Direct weights" below).
// With PRODUCERS > 0 (a tuning option, FP8_VK_COOPMAT_TILE's seventh field), that many extra subgroups load
// and decode, a slice further ahead, and the SG_M x SG_N subgroups only multiply. On the H100 it spills: past 8
// warps the driver holds the kernel to 168 registers (docs/BENCHMARKS.md, runs 66-69), 7-25x slower. Its code
// stays for a measured side effect: with it compiled in and PRODUCERS = 0, the default tile's per-channel E4M3
// GEMM ran 16-20% faster than the same kernel without it (run 72, same 172 registers, the other weight formats
// within 2%). The driver shows no machine code, so why is not known; removing the option should be measured.
//
// Weights are decoded as bit moves (value / dec_fold, exact in fp16) and every scale that can wait is applied
// in fp32 later: per-row and tensor scales in the epilogue, and block scales whose blocks cover whole subgroup
// tiles (DeepSeek's 128x128) on the accumulators, once per block (W_ACC_SCALE). Only scales that vary inside a
// subgroup tile (MX blocks of 1x32, odd block shapes) are multiplied in during decode, where values past 65504
// overflow fp16: the price of fp16 matrix units. Built three times where a compiler accepts each:
// -DFP8_NV_COOPMAT (GL_NV_cooperative_matrix), -DFP8_KHR_COOPMAT (GL_KHR_cooperative_matrix), and
// -DFP8_NV_COOPMAT2 (GL_NV_cooperative_matrix2, glslang 15 or newer), where the multiplies use workgroup-scope
// matrices: one BM x BN accumulator, operands BM x BK and BK x BN read from the same shared slices, the split
// over subgroups left to the driver, and the epilogue through a per-element operation and a tensor store. On the
// H100 that build measured 0.98-1.05x the KHR one (faster only with per-channel scales), with 8-9 fewer
// registers (docs/BENCHMARKS.md, run 74).
#extension GL_GOOGLE_include_directive : enable // glslangValidator needs it said; glslc implies it
// [[unroll]]: loops over register arrays must unroll, or the arrays (accumulators above all) go to local memory.
#extension GL_EXT_control_flow_attributes : require
#extension GL_EXT_shader_explicit_arithmetic_types_float16 : require
#extension GL_KHR_memory_scope_semantics : require
#extension GL_KHR_shader_subgroup_basic : require
#extension GL_KHR_shader_subgroup_vote : require
#if defined(FP8_EMULATE_COOPMAT)
// Test twin for devices without matrix units (lavapipe): the same decode, buffers, scale handling and epilogue,
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
#elif defined(FP8_NV_COOPMAT2)
#extension GL_KHR_cooperative_matrix : require
#extension GL_NV_cooperative_matrix2 : require
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
#include "coopmat_b_direct.glsl"

layout(local_size_x_id = 0) in;                       // SG_M * SG_N subgroups of 32
layout(constant_id = 10) const bool W_ALIGN16 = true; // every W row starts on 16 bytes
layout(constant_id = 11) const bool X_VEC = true;     // X rows aligned for 16-byte loads
// Tile shape (lib/vulkan/vk_gemm.c checks the limits; FP8_VK_COOPMAT_TILE=sgm,sgn,fm,fn,bk tries others):
layout(constant_id = 12) const uint SG_M = 2;         // subgroups along M (tokens)
layout(constant_id = 13) const uint SG_N = 4;         // subgroups along N (weight rows)
layout(constant_id = 14) const uint FM = 4;           // 16x16 tiles per subgroup along M, at most 4 (8 with W_DIRECT)
layout(constant_id = 15) const uint FN = 2;           // along N, at most 4
layout(constant_id = 16) const uint BK = 32;          // K per slice: 16, 32 or 64
// Weight block scales on the accumulators: the host sets it where block_rows is a multiple of 16 FN and
// block_cols a multiple of BK, so that one scale covers a subgroup's whole tile for a whole slice.
layout(constant_id = 17) const bool W_ACC_SCALE = false;
layout(constant_id = 18) const uint GROUP_M = 8;      // M blocks per band of the workgroup order (L2 reuse)
layout(constant_id = 19) const uint STAGES = 2;       // shared-memory slice buffers: 1 or 2
layout(constant_id = 24) const uint PRODUCERS = 0;    // subgroups that only load and decode (then STAGES = 2)
// Weights straight into the B fragments, no shared memory (see "Direct weights" below). The kernel needs BK =
// 64, no producers, FP8 weights moved to fp16 (W_RAW), rows on 16 bytes, K % 16 == 0, and a device whose B
// fragment layout passed the open-time check (coopmat_b_check.comp); the host (vk_gemm.c, coop_choose)
// chooses where it pays.
layout(constant_id = 25) const bool W_DIRECT = false;

const uint BM = SG_M * FM * 16u, BN = SG_N * FN * 16u;
const uint UNITS = BK / 8u;    // uvec4 (8 fp16) per row of a slice; GL_NV_cooperative_matrix loads uvec4 arrays as packed fp16
// Row stride in uvec4: one more than a row, so the 16-byte rows a matrix load reads fall on distinct banks.
// (The workgroup-scope build reads rows the same way: without the pad it ran 2.4-2.9x slower on the H100.)
const uint LD = UNITS + 1u;
const uint THREADS = SG_M * SG_N * 32u;   // the invocations that multiply
const uint LOADERS = PRODUCERS > 0u ? PRODUCERS * 32u : THREADS; // the invocations that load and decode
const uint A_UNITS = BM * UNITS;           // 8 activations each
const uint B_UNITS = W_DIRECT ? 0u : BN * (BK / 16u); // 16 weights each (none staged with W_DIRECT)
const uint PER_A = (A_UNITS + LOADERS - 1u) / LOADERS;
const uint PER_B = W_DIRECT ? 1u : (B_UNITS + LOADERS - 1u) / LOADERS;
shared uvec4 As[STAGES * BM * LD];   // X slices, row-major [m][k], fp16 pairs
shared uvec4 Bs[W_DIRECT ? 1u : STAGES * BN * LD];   // W slices, [n][k] = column-major K x N
// First weight row of the accumulator whose block scale W_ACC_SCALE tracks: the block's, or the subgroup's.
#ifdef FP8_NV_COOPMAT2
#define ACC_N n0
#else
#define ACC_N (n0 + sn)
#endif
#if defined(FP8_NV_COOPMAT2)
layout(std430, set = 0, binding = 5) writeonly buffer BYF { float yf[]; };
layout(std430, set = 0, binding = 5) writeonly buffer BYH { float16_t yh[]; };
#elif !defined(FP8_EMULATE_COOPMAT)
shared float Cs[SG_M * SG_N * 256u]; // per-subgroup 16x16 area: the layout probe, and the staged epilogue
#include "coopmat_layout.glsl"
#endif

// Whether weights and activations enter shared memory as value / dec_fold (gemm_common.glsl).
#define W_RAW w_raw_fp16(W_ACC_SCALE)
#define X_RAW x_raw_fp16()

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

// A weight unit is 16 consecutive k of one row, an activation unit 8. Their raw bytes are loaded a slice ahead
// of their decode. Units at the matrix edges load nothing here and are decoded element by element instead.
bool w_full(uint n, uint k) { return n < pc.N && k + 16u <= pc.K; }
bool x_full(uint m, uint k) { return m < pc.M && k + 8u <= pc.K && (X_VEC || XDT <= DT_E5M2FNUZ); }

uvec4 w_raw(uint n, uint k)
{
    if (!w_full(n, k)) return uvec4(0u);
    const uint row = pc.w_off + n * pc.w_stride;
    if (WDT == DT_E2M1) return uvec4(w_word(row + (k >> 1)), w_word(row + (k >> 1) + 4u), 0u, 0u);
    if (W_ALIGN16) return w128[(row + k) >> 4];
    return uvec4(w_word(row + k), w_word(row + k + 4u), w_word(row + k + 8u), w_word(row + k + 12u));
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

// The factor by which a weight's value is multiplied before it enters shared memory.
float w_factor(uint n, uint k)
{
    if (W_RAW) return 1.0 / dec_fold(WDT);
    return WS_MODE == SM_CHUNK || WS_MODE == SM_ELEM ? w_scale(n, k) : 1.0;
}

// Weights (n, k .. k+15) as fp16 for shared memory: elements k..k+7 in lo, k+8..k+15 in hi; zero outside.
void w_unit(uint n, uint k, uvec4 raw, out uvec4 lo, out uvec4 hi)
{
    if (!w_full(n, k)) {
        float v[16];
        for (uint i = 0u; i < 16u; i++) v[i] = (n < pc.N && k + i < pc.K) ? w_elem(n, k + i) * w_factor(n, k + i) : 0.0;
        lo = pack8(vec4(v[0], v[1], v[2], v[3]), vec4(v[4], v[5], v[6], v[7]));
        hi = pack8(vec4(v[8], v[9], v[10], v[11]), vec4(v[12], v[13], v[14], v[15]));
        return;
    }
    if (W_RAW) {
        if (WDT == DT_E2M1) {
            lo = dec8_e2m1_h(raw.x, EXACT);
            hi = dec8_e2m1_h(raw.y, EXACT);
        } else {
            dec16_fp8_h(WDT, raw, EXACT, lo, hi);
        }
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
        v0 *= vec4(w_scale(n, k), w_scale(n, k + 1u), w_scale(n, k + 2u), w_scale(n, k + 3u));
        v1 *= vec4(w_scale(n, k + 4u), w_scale(n, k + 5u), w_scale(n, k + 6u), w_scale(n, k + 7u));
        v2 *= vec4(w_scale(n, k + 8u), w_scale(n, k + 9u), w_scale(n, k + 10u), w_scale(n, k + 11u));
        v3 *= vec4(w_scale(n, k + 12u), w_scale(n, k + 13u), w_scale(n, k + 14u), w_scale(n, k + 15u));
        lo = pack8(v0 * f, v1 * f);
        hi = pack8(v2 * f, v3 * f);
    } else {
        const float s = f * (WS_MODE == SM_CHUNK ? w_scale(n, k) : 1.0); // a CHUNK block holds all 16
        lo = pack8(v0 * s, v1 * s);
        hi = pack8(v2 * s, v3 * s);
    }
}

float x_factor(uint m, uint k)
{
    if (X_RAW) return 1.0 / dec_fold(XDT);
    return XS_MODE == SM_CHUNK || XS_MODE == SM_ELEM ? x_scale(m, k) : 1.0;
}

// Activations (m, k .. k+7) as fp16 for shared memory; zero outside the matrix.
uvec4 x_unit(uint m, uint k, uvec4 a, uvec4 b)
{
    if (!x_full(m, k)) {
        float v[8];
        for (uint i = 0u; i < 8u; i++) v[i] = (m < pc.M && k + i < pc.K) ? x_elem(m, k + i) * x_factor(m, k + i) : 0.0;
        return pack8(vec4(v[0], v[1], v[2], v[3]), vec4(v[4], v[5], v[6], v[7]));
    }
    if (X_RAW) {
        if (XDT == DT_F16) return a; // already fp16: copied
        if (XDT <= DT_E5M2FNUZ) return uvec4(dec4_fp8_h(XDT, a.x, EXACT), dec4_fp8_h(XDT, a.y, EXACT));
    }
    vec4 lo, hi;
    if (XDT == DT_F16) {
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
    if (XS_MODE == SM_ELEM) {
        lo *= vec4(x_scale(m, k), x_scale(m, k + 1u), x_scale(m, k + 2u), x_scale(m, k + 3u));
        hi *= vec4(x_scale(m, k + 4u), x_scale(m, k + 5u), x_scale(m, k + 6u), x_scale(m, k + 7u));
    } else if (XS_MODE == SM_CHUNK) {
        const float s = x_scale(m, k);
        lo *= s;
        hi *= s;
    }
    return pack8(lo, hi);
}

// Y[m, n] from its accumulator: the fp32 factors that decode left out, the bias, the output dtype.
void emit(uint m, uint n, float v)
{
    if (m >= pc.M || n >= pc.N) return;
    y_store(m, n, v * fp16_sum_factor(m, n, pc.w_ts * pc.x_ts, W_RAW, X_RAW) + bias_at(n));
}

#ifdef FP8_NV_COOPMAT2
// emit for a workgroup-scope accumulator, element (r, c) of the block at (m0, n0); the tensor store drops what
// lies past M or N.
float epilogue(const in uint r, const in uint c, const in float v, const in uint m0, const in uint n0, const in float rs)
{
    const uint m = min(m0 + r, pc.M - 1u), n = min(n0 + c, pc.N - 1u);
    return v * fp16_sum_factor(m, n, pc.w_ts * pc.x_ts * rs, W_RAW, X_RAW) + bias_at(n);
}
#endif

// Direct weights (W_DIRECT). A subgroup's 16x16 B fragments are built from registers in the layout of
// coopmat_b_direct.glsl: invocation L holds rows g = L / 4 and g + 8 of a tile's 16 weight rows, and for each
// the four k {2q, 2q + 1, 2q + 8, 2q + 9} of a 16-deep step, q = L % 4. Rather than gathering those bytes,
// each invocation loads the 16 contiguous bytes [16q, 16q + 16) of each of its rows in a 64-deep slice and
// takes them as its k for all four steps: byte 4s + i holds step s, element i. That permutes K inside the
// slice; the dot products do not care as long as the activations are permuted the same way, which
// store_slice does while it stages them (x_direct_word). So weights never pass through shared memory, and each
// subgroup that uses a weight decodes it, straight into the fragment's registers.
const uint WD = W_DIRECT ? FN * 2u : 1u; // 16-byte weight chunks per invocation and slice: FN tiles x 2 rows

// The four 16-deep steps of a slice with direct weights: each B fragment from this invocation's two rows' step
// words, each decoded by DECODE (an expression of `word` giving the fp16 pairs of dec4_fp8_h), as the layout
// of coopmat_b_direct.glsl places them. A macro, so that each decoder gets a copy without branches inside.
#define DIRECT_STEPS(DECODE)                                                                                       \
    [[unroll]] for (uint kk = 0u; kk < 4u; kk++) {                                                                 \
        MAT_A a[FM];                                                                                               \
        MAT_B b[FN];                                                                                               \
        [[unroll]] for (uint i = 0u; i < FM; i++) LOAD_A(a[i], As, a_base + (sm + 16u * i) * LD + 2u * kk, LD);    \
        [[unroll]] for (uint j = 0u; j < FN; j++) {                                                                \
            uvec2 pairs[2];                                                                                        \
            [[unroll]] for (uint h = 0u; h < 2u; h++) {                                                            \
                const uint word = wcur[2u * j + h][kk];                                                            \
                pairs[h] = DECODE;                                                                                 \
            }                                                                                                      \
            [[unroll]] for (uint e = 0u; e < 8u; e++)                                                              \
                b[j][e] = unpackFloat2x16(pairs[e / 4u][(e % 4u) / 2u])[e % 2u];                                   \
        }                                                                                                          \
        [[unroll]] for (uint i = 0u; i < FM; i++)                                                                  \
            [[unroll]] for (uint j = 0u; j < FN; j++) acc[i * FN + j] = MMA(a[i], b[j], acc[i * FN + j]);         \
    }

// Where staged activation word pw (columns 2pw, 2pw + 1 of a 64-deep slice) goes: the word whose columns the
// B fragment pairs with the weights that the layout above reads at those bytes.
uint x_direct_word(uint pw)
{
    const uint q = pw / 8u, s = (pw % 8u) / 2u, t = pw % 2u; // reader q's bytes 4s + 2t, 4s + 2t + 1
    return 8u * s + q + 4u * t;                                // step s, k = 2q + 8t (and + 1)
}

// The slice column whose weight byte sits at logical column kl (the inverse of x_direct_word, per column):
// what the emulation multiplies by, so that lavapipe checks the two directions against each other.
uint w_direct_column(uint kl)
{
    const uint s = kl / 16u, f = kl % 16u, q = (f % 8u) / 2u, t = f / 8u;
    return 16u * q + 4u * s + 2u * t + (f % 2u);
}

// The emulation's weight at (n, k) as the direct path multiplies it: its fp16 value / dec_fold, 0 outside.
float w_direct_value(uint n, uint k)
{
    return n < pc.N && k < pc.K ? unpackHalf2x16(packHalf2x16(vec2(w_elem(n, k) / dec_fold(WDT), 0.0))).x : 0.0;
}

// This invocation's weight chunks of the slice at k0: rows n0 + sn + 16j + g (+ 8), bytes k0 + 16q on.
// Rows past N load the last row (their outputs are not stored); chunks past K load zeros.
void load_w_direct(uint nb, uint k0, uint lane, out uvec4 wd[WD])
{
    const uint g = lane / 4u, k = k0 + 16u * (lane % 4u);
    [[unroll]] for (uint c = 0u; c < WD; c++) {
        const uint n = min(nb + 16u * (c / 2u) + 8u * (c % 2u) + g, pc.N - 1u);
        wd[c] = k < pc.K ? w128[(pc.w_off + n * pc.w_stride + k) >> 4] : uvec4(0u);
    }
}

// A loader's raw units of one slice: `lt` is its index among the LOADERS invocations. They live in main's
// registers, not in module-scope arrays: as module-scope arrays the MXFP4 GEMM ran 10-26% slower on the H100
// (runs 67 and 70, same registers).
void load_slice(uint m0, uint n0, uint k0, uint lt, out uvec4 xa[PER_A], out uvec4 xb[PER_A], out uvec4 wr[PER_B])
{
    [[unroll]] for (uint i = 0u; i < PER_A; i++) {
        const uint u = lt + LOADERS * i;
        if (u < A_UNITS) x_raw(m0 + u / UNITS, k0 + (u % UNITS) * 8u, xa[i], xb[i]);
    }
    [[unroll]] for (uint i = 0u; i < PER_B; i++) {
        const uint u = lt + LOADERS * i;
        if (u < B_UNITS) wr[i] = w_raw(n0 + u / (BK / 16u), k0 + (u % (BK / 16u)) * 16u);
    }
}

void store_slice(uint buf, uint m0, uint n0, uint k0, uint lt, uvec4 xa[PER_A], uvec4 xb[PER_A], uvec4 wr[PER_B])
{
    [[unroll]] for (uint i = 0u; i < PER_A; i++) {
        const uint u = lt + LOADERS * i, row = u / UNITS;
        if (u >= A_UNITS) continue;
        const uvec4 v = x_unit(m0 + row, k0 + (u % UNITS) * 8u, xa[i], xb[i]);
        if (!W_DIRECT) {
            As[buf * BM * LD + row * LD + u % UNITS] = v;
            continue;
        }
        [[unroll]] for (uint j = 0u; j < 4u; j++) {
            const uint w = x_direct_word(4u * (u % UNITS) + j);
            As[buf * BM * LD + row * LD + w / 4u][w % 4u] = v[j];
        }
    }
    [[unroll]] for (uint i = 0u; i < PER_B; i++) {
        const uint u = lt + LOADERS * i, row = u / (BK / 16u), c = u % (BK / 16u);
        if (u < B_UNITS) {
            uvec4 lo, hi;
            w_unit(n0 + row, k0 + c * 16u, wr[i], lo, hi);
            Bs[buf * BN * LD + row * LD + 2u * c] = lo;
            Bs[buf * BN * LD + row * LD + 2u * c + 1u] = hi;
        }
    }
}

void main()
{
    const uint tid = gl_LocalInvocationID.x;
    const uint sg = gl_SubgroupID, lane = gl_SubgroupInvocationID;
    // Workgroups run in bands of GROUP_M block rows, N fastest inside a band, so that the ones resident together
    // share their X and W slices in L2.
    const uint tiles_n = gl_NumWorkGroups.x, tiles_m = gl_NumWorkGroups.y;
    const uint id = gl_WorkGroupID.y * tiles_n + gl_WorkGroupID.x;
    const uint band = id / (GROUP_M * tiles_n), first_m = band * GROUP_M;
    const uint band_m = min(tiles_m - first_m, GROUP_M), in_band = id % (GROUP_M * tiles_n);
    const uint n0 = (in_band / band_m) * BN, m0 = (first_m + in_band % band_m) * BM;
    const uint sm = (sg / SG_N) * FM * 16u, sn = (sg % SG_N) * FN * 16u; // this subgroup's part of the block
    // Roles: with PRODUCERS, invocations from THREADS on load and decode (lt counts them), the others multiply;
    // without, every invocation does both. Both kinds meet at the same barriers.
    const bool multiplies = PRODUCERS == 0u || tid < THREADS, loads = PRODUCERS == 0u || tid >= THREADS;
    const uint lt = PRODUCERS == 0u ? tid : tid - THREADS;
    uvec4 xa[PER_A], xb[PER_A], wr[PER_B]; // this loader's raw units of the slice in flight

#ifdef FP8_EMULATE_COOPMAT
    const uint OUT = BM * BN / THREADS; // outputs per thread, at most 128
    float acc[OUT], ref[OUT];
    for (uint q = 0u; q < OUT; q++) acc[q] = ref[q] = 0.0;
#elif defined(FP8_NV_COOPMAT2)
    coopmat<float, gl_ScopeWorkgroup, BM, BN, gl_MatrixUseAccumulator> acc = coopmat<float, gl_ScopeWorkgroup, BM, BN, gl_MatrixUseAccumulator>(0.0);
    float ref = 0.0;
#else
    MAT_C acc[FM * FN];
    [[unroll]] for (uint i = 0u; i < FM * FN; i++) acc[i] = MAT_C(0.0);
    float ref = 0.0; // W_ACC_SCALE: the block scale in which acc is counted (0: nothing counted yet)
    uint pos[CE];
    const bool direct = multiplies && probe_layout(sg * 256u, lane, pos);
    uvec4 wcur[WD], wnext[WD]; // W_DIRECT: this invocation's weight chunks of the slice multiplied, and the next
    if (W_DIRECT) load_w_direct(n0 + sn, 0u, lane, wcur);
#endif

    if (loads) {
        load_slice(m0, n0, 0u, lt, xa, xb, wr);
        store_slice(0u, m0, n0, 0u, lt, xa, xb, wr);
        if (PRODUCERS > 0u && BK < pc.K) load_slice(m0, n0, BK, lt, xa, xb, wr);
    }
    barrier();
    uint buf = 0u;
    for (uint k0 = 0u; k0 < pc.K; k0 += BK) {
        const bool more = k0 + BK < pc.K;
        if (PRODUCERS == 0u && more) load_slice(m0, n0, k0 + BK, lt, xa, xb, wr);
#if !defined(FP8_EMULATE_COOPMAT) && !defined(FP8_NV_COOPMAT2)
        if (W_DIRECT && more) load_w_direct(n0 + sn, k0 + BK, lane, wnext);
#endif
        const uint a_base = buf * BM * LD, b_base = buf * BN * LD;
#ifdef FP8_EMULATE_COOPMAT
        for (uint q = 0u; multiplies && q < OUT; q++) {
            const uint e = tid + THREADS * q, ml = e / BN, nl = e % BN;
            float sum = 0.0;
            for (uint k = 0u; k < BK; k++) {
                const uint word = (k % 8u) / 2u, half_ = k & 1u;
                const float a = unpackHalf2x16(As[a_base + ml * LD + k / 8u][word])[half_];
                sum = fma(a, W_DIRECT ? w_direct_value(n0 + nl, k0 + w_direct_column(k))
                                      : unpackHalf2x16(Bs[b_base + nl * LD + k / 8u][word])[half_], sum);
            }
            if (W_ACC_SCALE) {
                // What the matrix path does per subgroup, done per output: rescale to the new block's scale.
                const float s = w_block_scale(n0 + nl, k0);
                if (s == 0.0) continue;
                if (ref[q] != 0.0 && s != ref[q]) acc[q] *= ref[q] / s;
                ref[q] = s;
            }
            acc[q] += sum;
        }
#else
        bool skip = !multiplies;
        if (W_ACC_SCALE && !skip) {
            // acc counts in units of `ref`; a new block scale s rescales it once, and the final ref is applied in
            // the epilogue. A zero scale contributes nothing. (Accurate while the scales along one row of blocks
            // stay within a factor of about 2^100 of each other, which quantization scales do.)
            const float s = w_block_scale(ACC_N, k0);
            skip = s == 0.0;
            if (!skip && s != ref) {
                if (ref != 0.0) {
                    const float r = ref / s;
#ifdef FP8_NV_COOPMAT2
                    acc = acc * r;
#else
                    [[unroll]] for (uint i = 0u; i < FM * FN; i++) acc[i] = acc[i] * r;
#endif
                }
                ref = s;
            }
        }
#ifdef FP8_NV_COOPMAT2
        if (!skip) {
            coopmat<float16_t, gl_ScopeWorkgroup, BM, BK, gl_MatrixUseA> a;
            coopmat<float16_t, gl_ScopeWorkgroup, BK, BN, gl_MatrixUseB> b;
            coopMatLoad(a, As, a_base, LD, gl_CooperativeMatrixLayoutRowMajor);
            coopMatLoad(b, Bs, b_base, LD, gl_CooperativeMatrixLayoutColumnMajor);
            acc = coopMatMulAdd(a, b, acc);
        }
#else
        if (!skip && W_DIRECT) {
            // Bit moves alone where no chunk of the subgroup holds a code they cannot express (nearly always):
            // one vote per slice and no branch per word; else the scalar decoder, for this slice only.
            bool plain = !EXACT;
            [[unroll]] for (uint c = 0u; c < WD; c++) plain = plain && !fp8_any_special(WDT, wcur[c]);
            if (subgroupAll(plain)) {
                DIRECT_STEPS(fp8_h_moves(WDT, word));
            } else {
                DIRECT_STEPS(dec4_fp8_h(WDT, word, true));
            }
        } else if (!skip) {
            [[unroll]] for (uint kk = 0u; kk < BK / 16u; kk++) {
                MAT_A a[FM];
                MAT_B b[FN];
                [[unroll]] for (uint i = 0u; i < FM; i++) LOAD_A(a[i], As, a_base + (sm + 16u * i) * LD + 2u * kk, LD);
                [[unroll]] for (uint j = 0u; j < FN; j++) LOAD_B(b[j], Bs, b_base + (sn + 16u * j) * LD + 2u * kk, LD);
                [[unroll]] for (uint i = 0u; i < FM; i++)
                    [[unroll]] for (uint j = 0u; j < FN; j++) acc[i * FN + j] = MMA(a[i], b[j], acc[i * FN + j]);
            }
        }
#endif
#endif
        const uint next = (buf + 1u) % STAGES;
        if (PRODUCERS == 0u) {
            if (STAGES == 1u && more) barrier(); // every subgroup has read the one buffer before it is refilled
            if (more) store_slice(next, m0, n0, k0 + BK, lt, xa, xb, wr);
        } else if (loads && more) {
            // A producer puts the slice after next in flight, then decodes the next one, loaded an iteration
            // ago, into the buffer the multipliers are not reading.
            uvec4 na[PER_A], nb[PER_A], nw[PER_B];
            if (k0 + 2u * BK < pc.K) load_slice(m0, n0, k0 + 2u * BK, lt, na, nb, nw);
            store_slice(next, m0, n0, k0 + BK, lt, xa, xb, wr);
            [[unroll]] for (uint i = 0u; i < PER_A; i++) {
                xa[i] = na[i];
                xb[i] = nb[i];
            }
            [[unroll]] for (uint i = 0u; i < PER_B; i++) wr[i] = nw[i];
        }
        barrier();
        buf = next;
#if !defined(FP8_EMULATE_COOPMAT) && !defined(FP8_NV_COOPMAT2)
        if (W_DIRECT) [[unroll]] for (uint c = 0u; c < WD; c++) wcur[c] = wnext[c];
#endif
    }
    if (!multiplies) return;

#ifdef FP8_EMULATE_COOPMAT
    for (uint q = 0u; q < OUT; q++) {
        const uint e = tid + THREADS * q;
        emit(m0 + e / BN, n0 + e % BN, W_ACC_SCALE ? acc[q] * ref[q] : acc[q]);
    }
#elif defined(FP8_NV_COOPMAT2)
    // The epilogue in fp32 on the accumulator, then one tensor store (bf16 Y goes to the subgroup kernels).
    coopMatPerElementNV(acc, acc, epilogue, m0, n0, W_ACC_SCALE ? ref : 1.0);
    tensorLayoutNV<2, gl_CooperativeMatrixClampModeConstantNV> ty = createTensorLayoutNV(2, gl_CooperativeMatrixClampModeConstantNV);
    ty = setTensorLayoutDimensionNV(ty, pc.M, pc.N);
    ty = setTensorLayoutStrideNV(ty, pc.y_stride, 1);
    ty = sliceTensorLayoutNV(ty, m0, BM, n0, BN);
    if (YDT == DT_F32) {
        coopMatStoreTensorNV(acc, yf, pc.y_off, ty);
    } else {
        coopmat<float16_t, gl_ScopeWorkgroup, BM, BN, gl_MatrixUseAccumulator> h = coopmat<float16_t, gl_ScopeWorkgroup, BM, BN, gl_MatrixUseAccumulator>(acc);
        coopMatStoreTensorNV(h, yh, pc.y_off, ty);
    }
#else
    // Bounds, scales, bias and the output dtype per element: from registers where the layout is known, else each
    // 16x16 tile goes through this subgroup's area of shared memory.
    const uint base = sg * 256u;
    const float rs = W_ACC_SCALE ? ref : 1.0;
    if (direct) {
        [[unroll]] for (uint i = 0u; i < FM; i++)
            [[unroll]] for (uint j = 0u; j < FN; j++)
                [[unroll]] for (uint e = 0u; e < CE; e++)
                    emit(m0 + sm + 16u * i + pos[e] / 16u, n0 + sn + 16u * j + pos[e] % 16u, acc[i * FN + j][e] * rs);
        return;
    }
    [[unroll]] for (uint i = 0u; i < FM; i++) {
        [[unroll]] for (uint j = 0u; j < FN; j++) {
            STORE_C(acc[i * FN + j], Cs, base, 16u);
            subgroupMemoryBarrierShared();
            subgroupBarrier();
            [[unroll]] for (uint e = lane; e < 256u; e += gl_SubgroupSize)
                emit(m0 + sm + 16u * i + e / 16u, n0 + sn + 16u * j + e % 16u, Cs[base + e] * rs);
            subgroupBarrier();
        }
    }
#endif
}
