#version 450
// Matrix peak through GL_NV_cooperative_matrix2: one 128x128 fp32 accumulator per workgroup of 256, multiplied
// by 128x32 and 32x128 fp16 workgroup-scope matrices `iters` times. On the H100 (driver 580) this ran at 1.25x
// the NV build of the subgroup-scope 16x16x16 kernel (peak_coopmat.comp) and 1.12x its KHR build (run 61,
// docs/BENCHMARKS.md), so the benchmarks take the fastest of the peak kernels as the device's matrix peak.
// The operands come from shared memory filled with values that differ per element, so that no compiler can
// fold products of constant matrices (whether one would is not known). Stored only when pc.sink is non-zero,
// which never happens.
#extension GL_EXT_shader_explicit_arithmetic_types_float16 : require
#extension GL_KHR_memory_scope_semantics : require
#extension GL_KHR_cooperative_matrix : require
#extension GL_NV_cooperative_matrix2 : require

layout(local_size_x = 256) in;
layout(std430, binding = 5) buffer Sink { float sink[]; };
layout(push_constant) uniform Push { uint iters; uint sink; float a; float b; } pc;

const uint UNITS = 128u * 32u / 8u; // uvec4 (8 fp16) per operand
shared uvec4 As[UNITS], Bs[UNITS];

void main()
{
    const uint t = gl_LocalInvocationID.x;
    for (uint i = t; i < UNITS; i += 256u) {
        As[i] = uvec4(packHalf2x16(vec2(pc.a * float(i & 7u), pc.a)), packHalf2x16(vec2(pc.b, float(i & 63u))), i & 0x3BFFu, t);
        Bs[i] = uvec4(packHalf2x16(vec2(pc.b * float(i & 3u), pc.a)), packHalf2x16(vec2(pc.a, float(t & 63u))), t, i & 0x3BFFu);
    }
    barrier();
    coopmat<float16_t, gl_ScopeWorkgroup, 128, 32, gl_MatrixUseA> a;
    coopmat<float16_t, gl_ScopeWorkgroup, 32, 128, gl_MatrixUseB> b;
    coopMatLoad(a, As, 0u, 4u, gl_CooperativeMatrixLayoutRowMajor);
    coopMatLoad(b, Bs, 0u, 4u, gl_CooperativeMatrixLayoutColumnMajor);
    coopmat<float, gl_ScopeWorkgroup, 128, 128, gl_MatrixUseAccumulator> c =
        coopmat<float, gl_ScopeWorkgroup, 128, 128, gl_MatrixUseAccumulator>(0.0);
    for (uint i = 0u; i < pc.iters; i++) c = coopMatMulAdd(a, b, c);
    if (pc.sink != 0u) coopMatStore(c, sink, 0u, 128u, gl_CooperativeMatrixLayoutRowMajor);
}
