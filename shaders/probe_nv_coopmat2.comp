#version 450
// Configure-time probe (shaders/meson.build): does the compiler accept GL_NV_cooperative_matrix2, with the tensor
// loads, decode functions and per-element operations of gemm_coopmat2.comp?
#extension GL_EXT_shader_explicit_arithmetic_types_float16 : require
#extension GL_KHR_memory_scope_semantics : require
#extension GL_KHR_cooperative_matrix : require
#extension GL_NV_cooperative_matrix2 : require
#extension GL_EXT_buffer_reference : require
layout(local_size_x = 256) in;
layout(std430, binding = 0) readonly buffer B { uint b[]; };
layout(std430, binding = 1) writeonly buffer Y { float y[]; };
layout(buffer_reference, std430, buffer_reference_align = 4) readonly buffer Word { uint bits; };
float16_t decode(const in Word w, const in uint block[2], const in uint in_block[2])
{
    return float16_t(float((w.bits >> (8u * in_block[1])) & 0xFFu));
}
float twice(const in uint r, const in uint c, const in float v) { return 2.0 * v; }
void main()
{
    tensorLayoutNV<2, gl_CooperativeMatrixClampModeConstantNV> t = createTensorLayoutNV(2, gl_CooperativeMatrixClampModeConstantNV);
    t = setTensorLayoutBlockSizeNV(t, 1, 4);
    t = setTensorLayoutDimensionNV(t, 64, 64);
    coopmat<float16_t, gl_ScopeWorkgroup, 64, 32, gl_MatrixUseA> a;
    coopmat<float16_t, gl_ScopeWorkgroup, 32, 64, gl_MatrixUseB> bm;
    coopMatLoadTensorNV(a, b, 0, sliceTensorLayoutNV(t, 0, 64, 0, 32), decode);
    coopMatLoadTensorNV(bm, b, 0, sliceTensorLayoutNV(t, 0, 64, 0, 32), createTensorViewNV(2, false, 1, 0), decode);
    coopmat<float, gl_ScopeWorkgroup, 64, 64, gl_MatrixUseAccumulator> c = coopmat<float, gl_ScopeWorkgroup, 64, 64, gl_MatrixUseAccumulator>(0.0);
    c = coopMatMulAdd(a, bm, c);
    coopMatPerElementNV(c, c, twice);
    tensorLayoutNV<2> ty = createTensorLayoutNV(2);
    ty = setTensorLayoutDimensionNV(ty, 64, 64);
    coopMatStoreTensorNV(c, y, 0, ty);
}
