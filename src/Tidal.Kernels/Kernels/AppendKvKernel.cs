using ILGPU;
using ILGPU.Runtime;

namespace Tidal.Kernels.Kernels;

/// <summary>
/// Writes new tokens' K and V ([rows, kvHeads, d], F32) into F16 caches [kvHeads, capacity, d] at consecutive positions
/// (one thread per row and channel), or folds the keys into Quest's page bounds [kvHeads, pages, d] (one thread per
/// page and channel, taking that page's rows in order, as the reference does).
/// Reference: Tidal.Core.Backends.CpuBackend.AppendKv and Tidal.Core.Reference.Quest.UpdatePageBounds.
/// </summary>
public sealed class AppendKvKernel
{
    private readonly Action<KernelConfig, ArrayView<float>, ArrayView<float>, ArrayView<ushort>, ArrayView<ushort>, ArrayView<float>, ArrayView<float>, AppendShape> _kernel;

    /// <summary>Compiles the kernel.</summary>
    public AppendKvKernel(Accelerator accelerator) =>
        _kernel = accelerator.LoadStreamKernel<ArrayView<float>, ArrayView<float>, ArrayView<ushort>, ArrayView<ushort>, ArrayView<float>, ArrayView<float>, AppendShape>(Run);

    /// <summary>Sizes of one append.</summary>
    public struct AppendShape
    {
        /// <summary>Tokens (rows of k and v), at Position, Position + 1, ….</summary>
        public int Rows;
        /// <summary>KV heads.</summary>
        public int KvHeads;
        /// <summary>Cache positions per head.</summary>
        public int Capacity;
        /// <summary>Head dimension.</summary>
        public int HeadDim;
        /// <summary>Position of the first row.</summary>
        public int Position;
        /// <summary>Pages per head in the bounds (0: do not update bounds).</summary>
        public int Pages;
        /// <summary>1: write K/V; 0: only update the page bounds.</summary>
        public int WriteCache;
    }

    /// <summary>Launches one append of <see cref="AppendShape.Rows"/> tokens.</summary>
    public void Launch(ArrayView<float> k, ArrayView<float> v, ArrayView<ushort> keys, ArrayView<ushort> values, ArrayView<float> min, ArrayView<float> max, AppendShape shape)
    {
        long n = (long)Units(shape) * shape.KvHeads * shape.HeadDim;
        _kernel(new KernelConfig((int)((n + 127) / 128), 128), k, v, keys, values, min, max, shape);
    }

    /// <summary>Rows written, or pages folded into.</summary>
    private static int Units(in AppendShape s) => s.WriteCache != 0 ? s.Rows : (s.Position + s.Rows - 1) / PageSize - s.Position / PageSize + 1;

    private const int PageSize = Tidal.Core.Reference.Quest.PageSize;

    private static void Run(ArrayView<float> k, ArrayView<float> v, ArrayView<ushort> keys, ArrayView<ushort> values, ArrayView<float> min, ArrayView<float> max, AppendShape s)
    {
        int width = s.KvHeads * s.HeadDim, t = Grid.GlobalIndex.X;
        if (t >= Units(s) * width) return;
        int unit = t / width, e = t % width, head = e / s.HeadDim, i = e % s.HeadDim;
        if (s.WriteCache != 0)
        {
            long at = ((long)head * s.Capacity + s.Position + unit) * s.HeadDim + i;
            keys[at] = KernelMath.FloatToHalf(k[(long)unit * width + e]);
            values[at] = KernelMath.FloatToHalf(v[(long)unit * width + e]);
            return;
        }
        int page = s.Position / PageSize + unit;
        int from = Math.Max(s.Position, page * PageSize), to = Math.Min(s.Position + s.Rows, (page + 1) * PageSize);
        long bound = ((long)head * s.Pages + page) * s.HeadDim + i;
        float lo = min[bound], hi = max[bound];
        for (int position = from; position < to; position++)
        {
            float key = k[(long)(position - s.Position) * width + e];
            bool first = position % PageSize == 0;
            lo = first ? key : MathF.Min(lo, key);
            hi = first ? key : MathF.Max(hi, key);
        }
        min[bound] = lo;
        max[bound] = hi;
    }
}
