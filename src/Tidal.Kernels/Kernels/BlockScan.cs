using ILGPU;

namespace Tidal.Kernels.Kernels;

/// <summary>A group-wide exclusive prefix sum of one 64-bit count per thread, shared by the selection kernels: a shuffle
/// scan within each warp, then one warp scans the warp totals (three barriers, whatever the group size). Counts and
/// integer masses add exactly in any order, so the scan's order does not matter.</summary>
public static class BlockScan
{
    /// <summary>Returns the sum of the values of threads before this one; <paramref name="total"/> is the group's sum.
    /// <paramref name="scratch"/> holds at least 32 values; the group is a whole number of warps, and every thread of
    /// it must call.</summary>
    public static ulong Exclusive(ArrayView<ulong> scratch, ulong value, out ulong total)
    {
        int tid = Group.IdxX, lane = tid % 32, warp = tid / 32, warps = Group.DimX / 32;
        ulong inclusive = WarpInclusive(value, lane);
        if (lane == 31) scratch[warp] = inclusive;
        Group.Barrier();
        if (warp == 0)
        {
            ulong sums = WarpInclusive(lane < warps ? scratch[lane] : 0ul, lane);
            if (lane < warps) scratch[lane] = sums;
        }
        Group.Barrier();
        total = scratch[warps - 1];
        ulong before = (warp > 0 ? scratch[warp - 1] : 0ul) + inclusive - value;
        Group.Barrier(); // the scratch may be reused by the next scan
        return before;
    }

    private static ulong WarpInclusive(ulong v, int lane)
    {
        for (int d = 1; d < 32; d *= 2)
        {
            ulong up = Warp.ShuffleUp(v, d);
            if (lane >= d) v += up;
        }
        return v;
    }
}
