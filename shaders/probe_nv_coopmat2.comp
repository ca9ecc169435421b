#version 450
// Configure-time probe (shaders/meson.build): does the compiler accept GL_NV_cooperative_matrix2 as the coopmat2
// build of gemm_coopmat.comp uses it: workgroup-scope loads from shared memory, a per-element operation, and a
// tensor store?
#extension GL_EXT_shader_explicit_arithmetic_types_float16 : require
#extension GL_KHR_memory_scope_semantics : require
#extension GL_KHR_cooperative_matrix : require
#extension GL_NV_cooperative_matrix2 : require
layout(local_size_x = 256) in;
layout(std430, binding = 1) writeonly buffer Y { float y[]; };
shared uvec4 s[64 * 5];
float twice(const in uint r, const in uint c, const in float v, const in float f) { return f * v; }
void main()
{
    s[gl_LocalInvocationID.x] = uvec4(gl_LocalInvocationID.x);
    barrier();
    coopmat<float16_t, gl_ScopeWorkgroup, 64, 32, gl_MatrixUseA> a;
    coopmat<float16_t, gl_ScopeWorkgroup, 32, 64, gl_MatrixUseB> b;
    coopMatLoad(a, s, 0, 5, gl_CooperativeMatrixLayoutRowMajor);
    coopMatLoad(b, s, 0, 5, gl_CooperativeMatrixLayoutColumnMajor);
    coopmat<float, gl_ScopeWorkgroup, 64, 64, gl_MatrixUseAccumulator> c = coopmat<float, gl_ScopeWorkgroup, 64, 64, gl_MatrixUseAccumulator>(0.0);
    c = coopMatMulAdd(a, b, c);
    coopMatPerElementNV(c, c, twice, 2.0);
    tensorLayoutNV<2, gl_CooperativeMatrixClampModeConstantNV> ty = createTensorLayoutNV(2, gl_CooperativeMatrixClampModeConstantNV);
    ty = setTensorLayoutDimensionNV(ty, 60, 60);
    coopMatStoreTensorNV(c, y, 0, ty);
}
