// The 16x16 fp16 B fragment layout that gemm_coopmat.comp's direct weights (W_DIRECT) build their fragments in,
// written once for that kernel and for coopmat_b_check.comp, which checks it on a device at open. It is the
// NVIDIA mma B operand: invocation L holds, for weight rows g = L / 4 and g + 8 of the tile, the k
// {2q, 2q + 1, 2q + 8, 2q + 9}, q = L % 4.

// (k, n) in the 16x16 tile of element e of invocation `lane`'s B fragment. Bits of e: 2, which of the
// invocation's two rows; 1, k + 8 or not; 0, k + 1 or not.
uvec2 b_direct_kn(uint lane, uint e)
{
    return uvec2(2u * (lane % 4u) + 8u * ((e >> 1u) & 1u) + (e & 1u), lane / 4u + 8u * (e >> 2u));
}
