#version 450
// Bandwidth reference for the benchmarks: copy one buffer into another in 16-byte words. Each thread moves
// COPY_UNROLL words per round (all loads issued before the stores, a workgroup's threads on consecutive words),
// and the grid strides over the rest, so any size runs on a grid the device accepts.
layout(local_size_x = 256) in;
layout(std430, set = 0, binding = 2) readonly buffer Src { uvec4 src[]; };
layout(std430, set = 0, binding = 5) writeonly buffer Dst { uvec4 dst[]; };
layout(push_constant) uniform Push { uint words; } pc;  // 16-byte words to copy

#define COPY_UNROLL 4u

void main()
{
    const uint per_group = 256u * COPY_UNROLL;
    const uint stride = gl_NumWorkGroups.x * per_group;
    for (uint base = gl_WorkGroupID.x * per_group + gl_LocalInvocationID.x; base < pc.words; base += stride) {
        uvec4 v[COPY_UNROLL];
        for (uint j = 0u; j < COPY_UNROLL; j++) {
            const uint i = base + 256u * j;
            if (i < pc.words) v[j] = src[i];
        }
        for (uint j = 0u; j < COPY_UNROLL; j++) {
            const uint i = base + 256u * j;
            if (i < pc.words) dst[i] = v[j];
        }
    }
}
