#version 450
// Device check at open for the cooperative-matrix GEMM's direct weights (gemm_coopmat.comp, W_DIRECT): does
// this driver's 16x16 fp16 B fragment hold, in each invocation, the elements coopmat_b_direct.glsl says? The
// layout is the implementation's choice, so the GEMM takes that path only where this finds no difference. One
// subgroup loads a numbered tile from shared memory as the GEMM loads B ([n][k], column-major K x N) and each
// invocation writes how many of its elements are not where the layout puts them (all 8 where it holds other
// than 8). Built as the KHR (-DFP8_KHR_COOPMAT) and NV (-DFP8_NV_COOPMAT) variants, one per GEMM build.
#extension GL_GOOGLE_include_directive : enable
#extension GL_EXT_control_flow_attributes : require
#extension GL_EXT_shader_explicit_arithmetic_types_float16 : require
#extension GL_KHR_memory_scope_semantics : require
#ifdef FP8_NV_COOPMAT
#extension GL_NV_cooperative_matrix : require
#define MAT_B fcoopmatNV<16, gl_ScopeSubgroup, 16, 16>
#define LOAD_B(m, arr, off, ld) coopMatLoadNV(m, arr, off, ld, true)
#else
#extension GL_KHR_cooperative_matrix : require
#define MAT_B coopmat<float16_t, gl_ScopeSubgroup, 16, 16, gl_MatrixUseB>
#define LOAD_B(m, arr, off, ld) coopMatLoad(m, arr, off, ld, gl_CooperativeMatrixLayoutColumnMajor)
#endif
#include "coopmat_b_direct.glsl"

layout(local_size_x = 32) in;
layout(std430, set = 0, binding = 5) writeonly buffer Out { uint bad[]; };
shared uvec4 tile[32]; // 16 rows n of 16 k as fp16, two uvec4 a row; element (k, n) holds 16 n + k

void main()
{
    const uint lane = gl_LocalInvocationID.x;
    // Invocation i writes row i / 2, k 8 (i % 2) .. + 7.
    const uint n = lane / 2u, k = 8u * (lane % 2u);
    uvec4 v;
    [[unroll]] for (uint j = 0u; j < 4u; j++)
        v[j] = packHalf2x16(vec2(float(16u * n + k + 2u * j), float(16u * n + k + 2u * j + 1u)));
    tile[lane] = v;
    barrier();
    MAT_B b;
    LOAD_B(b, tile, 0u, 2u);
    uint wrong = 0u;
    if (b.length() != 8) {
        wrong = 8u;
    } else {
        [[unroll]] for (uint e = 0u; e < 8u; e++) {
            const uvec2 kn = b_direct_kn(lane, e);
            if (float(b[e]) != float(16u * kn.y + kn.x)) wrong++;
        }
    }
    bad[lane] = wrong;
}
