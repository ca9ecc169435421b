#version 450
// Cooperative-matrix GEMM through GL_NV_cooperative_matrix2 (VK_NV_cooperative_matrix2): one BM x BN block of Y
// per workgroup, as workgroup-scope matrices. It computes Y^T = W X^T: the weights are matrix A, read row by row
// as they lie in memory, and the activations matrix B through a transposing view (the other way round, weights
// as a transposed B, measured the same on the H100). The operands come in through tensor-addressed loads whose
// decode functions turn the packed FP8/FP4 bytes (and f32/bf16/FP8 activations) into fp16 as the driver stages
// them; the driver owns the shared memory, its double buffering and the split over subgroups. Scales are applied
// where gemm_coopmat.comp applies them: per-row and tensor scales in the epilogue, 128x128-style block scales on
// the accumulator once per K block (W_ACC_SCALE), finer ones inside the decode.
//
// On the H100 (driver 580) it runs at 0.3-0.8x the hand-staged gemm_coopmat.comp (docs/BENCHMARKS.md), so the
// verdict never picks it; FP8_PATH=vk_gemm_nv_coopmat2 does. Not profiled; the likely cause is that a decode
// function runs once per element with its own load of the word, where the hand-staged kernel loads 16 bytes
// and decodes them together.
//
// Needs a glslang with GL_NV_cooperative_matrix2 (15 or newer; Debian 12's is 11): shaders/meson.build builds
// this variant only where the compiler accepts shaders/probe_nv_coopmat2.comp.
#extension GL_GOOGLE_include_directive : enable
#extension GL_EXT_control_flow_attributes : require
#extension GL_EXT_shader_explicit_arithmetic_types_float16 : require
#extension GL_EXT_shader_explicit_arithmetic_types_int16 : require
#extension GL_KHR_memory_scope_semantics : require
#extension GL_KHR_cooperative_matrix : require
#extension GL_NV_cooperative_matrix2 : require
#extension GL_EXT_buffer_reference : require

#include "gemm_common.glsl"

layout(local_size_x_id = 0) in;                       // cooperativeMatrixWorkgroupScopeMaxWorkgroupSize at most
layout(constant_id = 10) const uint BM = 128;         // tokens per workgroup
layout(constant_id = 11) const uint BN = 128;         // weight rows per workgroup
layout(constant_id = 12) const uint BK = 32;          // K per step
// Weight block scales on the accumulator (the host sets it where block_rows is a multiple of BN, block_cols of
// BK, and every workgroup's rows lie in one block row).
layout(constant_id = 13) const bool W_ACC_SCALE = false;
layout(constant_id = 14) const uint GROUP_M = 8;      // M blocks per band of the workgroup order (L2 reuse)
// fp16 activations without per-element scales: loaded as they are, no decode function.
layout(constant_id = 15) const bool X_DIRECT = false;

// The activations and Y as the tensor loads and stores see them (same bindings as gemm_common.glsl).
layout(std430, set = 0, binding = 2) readonly buffer BXH { float16_t xh[]; };
layout(std430, set = 0, binding = 5) writeonly buffer BYF { float yf[]; };
layout(std430, set = 0, binding = 5) writeonly buffer BYH { float16_t yh[]; };

// What a decode function receives: one 32-bit word of packed codes (4 FP8, 8 E2M1, 2 16-bit or 1 f32).
layout(buffer_reference, std430, buffer_reference_align = 4) readonly buffer PackedWord { uint bits; };

// Codes per 32-bit word.
uint codes_per_word(uint dt)
{
    if (dt == DT_E2M1) return 8u;
    if (dt == DT_F16 || dt == DT_BF16) return 2u;
    if (dt == DT_F32) return 1u;
    return 4u;
}

// Whether weights and activations enter the matrices as value / dec_fold (gemm_common.glsl); raw codes are
// moved into fp16 bits by dec1_h (decode.glsl, checked at device open).
#define W_RAW w_raw_fp16(W_ACC_SCALE)
#define X_RAW x_raw_fp16()
float16_t raw_half(uint dt, uint c) { return uint16BitsToHalf(uint16_t(dec1_h(dt, c))); }

uint code_at(uint dt, uint word, uint j)
{
    if (dt == DT_E2M1) return (word >> (4u * j)) & 15u;
    return (word >> (8u * j)) & 0xFFu;
}

// Weight element (n, k) as fp16: called by the driver for each element of a B tile, with the word that holds it.
float16_t decode_w(const in PackedWord p, const in uint block[2], const in uint in_block[2])
{
    const uint c = code_at(WDT, p.bits, in_block[1]);
    if (W_RAW) return raw_half(WDT, c);
    const uint n = block[0], k = block[1] * codes_per_word(WDT) + in_block[1];
    float f = WS_MODE == SM_CHUNK || WS_MODE == SM_ELEM ? w_scale(n, k) : 1.0;
    return float16_t(dec_scalar(WDT, c) * f);
}

// Activation element (m, k) as fp16 (f32, bf16, FP8, or f16 with per-element scales).
float16_t decode_x(const in PackedWord p, const in uint block[2], const in uint in_block[2])
{
    const uint word = p.bits, j = in_block[1];
    float v;
    if (XDT == DT_F32) {
        v = uintBitsToFloat(word);
    } else if (XDT == DT_F16) {
        v = unpackHalf2x16(word >> (16u * j)).x;
    } else if (XDT == DT_BF16) {
        v = uintBitsToFloat((word >> (16u * j)) << 16);
    } else {
        const uint c = code_at(XDT, word, j);
        if (X_RAW) return raw_half(XDT, c);
        v = dec_scalar(XDT, c);
    }
    if (XS_MODE == SM_CHUNK || XS_MODE == SM_ELEM) v *= x_scale(block[0], block[1] * codes_per_word(XDT) + j);
    return float16_t(v);
}

// Y[m0 + c, n0 + r] from its accumulator (rows are weight rows): the fp32 factors that decode left out, the bias.
float epilogue(const in uint r, const in uint c, const in float v, const in uint m0, const in uint n0, const in float rs)
{
    const uint m = min(m0 + c, pc.M - 1u), n = min(n0 + r, pc.N - 1u); // elements past the edge are not stored
    return v * fp16_sum_factor(m, n, pc.w_ts * pc.x_ts * rs, W_RAW, X_RAW) + bias_at(n);
}


void main()
{
    // Workgroups in bands of GROUP_M block rows, N fastest inside a band (as gemm_coopmat.comp).
    const uint tiles_n = gl_NumWorkGroups.x, tiles_m = gl_NumWorkGroups.y;
    const uint id = gl_WorkGroupID.y * tiles_n + gl_WorkGroupID.x;
    const uint band = id / (GROUP_M * tiles_n), first_m = band * GROUP_M;
    const uint band_m = min(tiles_m - first_m, GROUP_M), in_band = id % (GROUP_M * tiles_n);
    const uint n0 = (in_band / band_m) * BN, m0 = (first_m + in_band % band_m) * BM;

    // W: N rows of K codes, w_stride bytes apart, in 32-bit words; elements past N or K read as zero.
    const uint wpw = codes_per_word(WDT);
    tensorLayoutNV<2, gl_CooperativeMatrixClampModeConstantNV> tw = createTensorLayoutNV(2, gl_CooperativeMatrixClampModeConstantNV);
    tw = setTensorLayoutBlockSizeNV(tw, 1, wpw);
    tw = setTensorLayoutDimensionNV(tw, pc.N, pc.K);
    tw = setTensorLayoutStrideNV(tw, pc.w_stride / 4u, 1);
    // X: M rows of K, x_stride elements apart; as fp16 elements when direct, else as words through decode_x.
    const uint xpw = codes_per_word(XDT);
    tensorLayoutNV<2, gl_CooperativeMatrixClampModeConstantNV> tx = createTensorLayoutNV(2, gl_CooperativeMatrixClampModeConstantNV);
    if (!X_DIRECT) tx = setTensorLayoutBlockSizeNV(tx, 1, xpw);
    tx = setTensorLayoutDimensionNV(tx, pc.M, pc.K);
    tx = setTensorLayoutStrideNV(tx, X_DIRECT ? pc.x_stride : pc.x_stride / xpw, 1);
    // B is K x M: X's rows become its columns (and Y^T's columns Y's rows at the store).
    tensorViewNV<2, false, 1, 0> transposed = createTensorViewNV(2, false, 1, 0);

    coopmat<float, gl_ScopeWorkgroup, BN, BM, gl_MatrixUseAccumulator> acc = coopmat<float, gl_ScopeWorkgroup, BN, BM, gl_MatrixUseAccumulator>(0.0);
    float ref = 0.0; // W_ACC_SCALE: the block scale in which acc is counted (0: nothing counted yet)
    const uint x_base = X_DIRECT ? pc.x_off : pc.x_off / xpw;
    for (uint k0 = 0u; k0 < pc.K; k0 += BK) {
        if (W_ACC_SCALE) {
            // As gemm_coopmat.comp: acc counts in units of ref; a new block scale rescales it once.
            const float s = w_block_scale(n0, k0);
            if (s == 0.0) continue;
            if (s != ref) {
                if (ref != 0.0) acc = acc * (ref / s);
                ref = s;
            }
        }
        coopmat<float16_t, gl_ScopeWorkgroup, BN, BK, gl_MatrixUseA> a;
        coopmat<float16_t, gl_ScopeWorkgroup, BK, BM, gl_MatrixUseB> b;
        coopMatLoadTensorNV(a, w32, pc.w_off / 4u, sliceTensorLayoutNV(tw, n0, BN, k0, BK), decode_w);
        if (X_DIRECT)
            coopMatLoadTensorNV(b, xh, x_base, sliceTensorLayoutNV(tx, m0, BM, k0, BK), transposed);
        else
            coopMatLoadTensorNV(b, x32, x_base, sliceTensorLayoutNV(tx, m0, BM, k0, BK), transposed, decode_x);
        acc = coopMatMulAdd(a, b, acc);
    }

    // Epilogue in fp32, then one tensor store; the layout drops what lies past M or N.
    coopMatPerElementNV(acc, acc, epilogue, m0, n0, W_ACC_SCALE ? ref : 1.0);
    tensorLayoutNV<2, gl_CooperativeMatrixClampModeConstantNV> ty = createTensorLayoutNV(2, gl_CooperativeMatrixClampModeConstantNV);
    ty = setTensorLayoutDimensionNV(ty, pc.M, pc.N);
    ty = setTensorLayoutStrideNV(ty, pc.y_stride, 1);
    ty = sliceTensorLayoutNV(ty, m0, BM, n0, BN);
    if (YDT == DT_F32) {
        coopMatStoreTensorNV(acc, yf, pc.y_off, ty, transposed);
    } else {
        // f16 (bf16 output has no matrix type to convert to here: the host sends it to the other kernels).
        coopmat<float16_t, gl_ScopeWorkgroup, BN, BM, gl_MatrixUseAccumulator> h = coopmat<float16_t, gl_ScopeWorkgroup, BN, BM, gl_MatrixUseAccumulator>(acc);
        coopMatStoreTensorNV(h, yh, pc.y_off, ty, transposed);
    }
}
