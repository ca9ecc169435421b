#version 450
// Arithmetic peak without matrix units: 8 independent fp32 FMA chains per invocation, `iters` times, in
// registers. Stored only when pc.sink is non-zero, which the compiler cannot know.
layout(local_size_x = 256) in;
layout(std430, binding = 5) buffer Sink { float sink[]; };
layout(push_constant) uniform Push { uint iters; uint sink; float a; float b; } pc;

void main()
{
    float c[8];
    for (uint j = 0u; j < 8u; j++) c[j] = float(gl_LocalInvocationID.x + j);
    for (uint i = 0u; i < pc.iters; i++)
        for (uint j = 0u; j < 8u; j++) c[j] = fma(c[j], pc.a, pc.b);
    if (pc.sink != 0u) sink[gl_LocalInvocationID.x] = c[0] + c[1] + c[2] + c[3] + c[4] + c[5] + c[6] + c[7];
}
