using ILGPU;
using ILGPU.Runtime;

namespace Tidal.Kernels.Kernels;

/// <summary>
/// Writes new tokens' K and V ([rows, kvHeads, d], F32) into F16 caches [kvHeads, capacity, d] at consecutive positions,
/// or folds the keys into Quest's page bounds [kvHeads, pages, d]. One thread per (head, channel), taking the rows in
/// order, so rows that share a page fold in the reference's order.
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
        int n = shape.KvHeads * shape.HeadDim;
        _kernel(new KernelConfig((n + 127) / 128, 128), k, v, keys, values, min, max, shape);
    }

    private static void Run(ArrayView<float> k, ArrayView<float> v, ArrayView<ushort> keys, ArrayView<ushort> values, ArrayView<float> min, ArrayView<float> max, AppendShape s)
    {
        int t = Grid.GlobalIndex.X;
        if (t >= s.KvHeads * s.HeadDim) return;
        int head = t / s.HeadDim, i = t % s.HeadDim, width = s.KvHeads * s.HeadDim;
        for (int r = 0; r < s.Rows; r++)
        {
            int position = s.Position + r;
            float key = k[(long)r * width + t];
            if (s.WriteCache != 0)
            {
                long at = ((long)head * s.Capacity + position) * s.HeadDim + i;
                keys[at] = KernelMath.FloatToHalf(key);
                values[at] = KernelMath.FloatToHalf(v[(long)r * width + t]);
            }
            if (s.Pages == 0) continue;
            long bound = ((long)head * s.Pages + position / 16) * s.HeadDim + i;
            bool first = position % 16 == 0;
            min[bound] = first ? key : MathF.Min(min[bound], key);
            max[bound] = first ? key : MathF.Max(max[bound], key);
        }
    }
}
