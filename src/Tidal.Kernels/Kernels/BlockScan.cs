using ILGPU;

namespace Tidal.Kernels.Kernels;

/// <summary>A group-wide exclusive prefix sum of one 64-bit count per thread (Hillis–Steele in shared memory), shared by
/// the selection kernels: counts and integer masses add exactly in any order, so the scan's order does not matter.</summary>
public static class BlockScan
{
    /// <summary>Returns the sum of the values of threads before this one; <paramref name="total"/> is the group's sum.
    /// <paramref name="scratch"/> holds one value per thread of the group; every thread of the group must call.</summary>
    public static ulong Exclusive(ArrayView<ulong> scratch, ulong value, out ulong total)
    {
        int tid = Group.IdxX, threads = Group.DimX;
        scratch[tid] = value;
        Group.Barrier();
        for (int offset = 1; offset < threads; offset *= 2)
        {
            ulong add = tid >= offset ? scratch[tid - offset] : 0ul;
            Group.Barrier();
            scratch[tid] += add;
            Group.Barrier();
        }
        total = scratch[threads - 1];
        ulong inclusive = scratch[tid];
        Group.Barrier();
        return inclusive - value;
    }
}
