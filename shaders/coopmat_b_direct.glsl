// The 16x16 fp16 B fragment layout that gemm_coopmat.comp's direct weights (W_DIRECT) build their fragments in,
// written once for that kernel and for coopmat_b_check.comp, which checks it on a device at open. It is the
// NVIDIA mma B operand: invocation L holds, for weight rows g = L / 4 and g + 8 of the tile, the k
// {2q, 2q + 1, 2q + 8, 2q + 9}, q = L % 4.

// Fragment element e -> bit 2: which of the invocation's two rows; bit 1: k + 8 or not; bit 0: k + 1 or not.
const uint B_ELEM[8] = uint[8](0u, 1u, 2u, 3u, 4u, 5u, 6u, 7u);

// (k, n) in the 16x16 tile of element e of invocation `lane`'s B fragment.
uvec2 b_direct_kn(uint lane, uint e)
{
    const uint r = B_ELEM[e];
    return uvec2(2u * (lane % 4u) + 8u * ((r >> 1u) & 1u) + (r & 1u), lane / 4u + 8u * (r >> 2u));
}
