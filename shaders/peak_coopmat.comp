#version 450
// Matrix peak for the benchmarks: each subgroup multiplies 16x16x16 fp16 tiles held in registers into 8
// independent fp32 accumulators, `iters` times; nothing is read from memory in the loop. The result is stored
// only when pc.sink is non-zero (never in practice), which the compiler cannot know, so nothing is removed.
#extension GL_EXT_shader_explicit_arithmetic_types_float16 : require
#extension GL_KHR_memory_scope_semantics : require
#ifdef FP8_NV_COOPMAT
#extension GL_NV_cooperative_matrix : require
#define MAT_A fcoopmatNV<16, gl_ScopeSubgroup, 16, 16>
#define MAT_B fcoopmatNV<16, gl_ScopeSubgroup, 16, 16>
#define MAT_C fcoopmatNV<32, gl_ScopeSubgroup, 16, 16>
#define STORE_C(m, arr, off, ld) coopMatStoreNV(m, arr, off, ld, false)
#define MMA(a, b, c) coopMatMulAddNV(a, b, c)
#else
#extension GL_KHR_cooperative_matrix : require
#define MAT_A coopmat<float16_t, gl_ScopeSubgroup, 16, 16, gl_MatrixUseA>
#define MAT_B coopmat<float16_t, gl_ScopeSubgroup, 16, 16, gl_MatrixUseB>
#define MAT_C coopmat<float, gl_ScopeSubgroup, 16, 16, gl_MatrixUseAccumulator>
#define STORE_C(m, arr, off, ld) coopMatStore(m, arr, off, ld, gl_CooperativeMatrixLayoutRowMajor)
#define MMA(a, b, c) coopMatMulAdd(a, b, c)
#endif

layout(local_size_x = 128) in;
layout(std430, binding = 5) buffer Sink { float sink[]; };
layout(push_constant) uniform Push { uint iters; uint sink; float a; float b; } pc;

void main()
{
    MAT_A a = MAT_A(float16_t(pc.a));
    MAT_B b = MAT_B(float16_t(pc.b));
    MAT_C c[8];
    for (uint j = 0u; j < 8u; j++) c[j] = MAT_C(0.0);
    for (uint i = 0u; i < pc.iters; i++)
        for (uint j = 0u; j < 8u; j++) c[j] = MMA(a, b, c[j]);
    if (pc.sink != 0u) {
        for (uint j = 1u; j < 8u; j++) c[0] = c[0] + c[j];
        STORE_C(c[0], sink, 0u, 16u);
    }
}
