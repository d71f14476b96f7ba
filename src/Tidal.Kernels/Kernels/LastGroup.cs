using ILGPU;

namespace Tidal.Kernels.Kernels;

/// <summary>
/// "Is this the last of the groups sharing a counter to finish?" (threadFenceReduction's pattern): each group fences its
/// global writes and then takes a ticket, so the last one sees every group's writes; the last one also resets the
/// counter, so the counter is zero again for the next launch and no launch has to clear it. Every thread of the group
/// must call.
/// </summary>
internal static class LastGroup
{
    /// <param name="counter">The shared counter (one int, zero before the first group arrives).</param>
    /// <param name="groups">How many groups take a ticket from it.</param>
    /// <param name="ticket">One int of shared memory, free to overwrite.</param>
    public static bool Arrive(ArrayView<int> counter, int groups, ArrayView<int> ticket)
    {
        MemoryFence.DeviceLevel();
        Group.Barrier(); // every thread's writes are fenced, and its earlier reads of the ticket's memory done
        if (Group.IdxX == 0) ticket[0] = Atomic.Add(ref counter[0], 1);
        Group.Barrier();
        if (ticket[0] != groups - 1) return false;
        if (Group.IdxX == 0) counter[0] = 0;
        MemoryFence.DeviceLevel();
        return true;
    }
}
