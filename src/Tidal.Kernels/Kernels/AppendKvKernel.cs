using ILGPU;
using ILGPU.Runtime;

namespace Tidal.Kernels.Kernels;

/// <summary>
/// Writes the new token's K and V ([kvHeads, d], F32) into F16 caches [kvHeads, capacity, d] at a position, and folds
/// the key into Quest's page bounds [kvHeads, pages, d]. One thread per (head, channel).
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
        /// <summary>KV heads.</summary>
        public int KvHeads;
        /// <summary>Cache positions per head.</summary>
        public int Capacity;
        /// <summary>Head dimension.</summary>
        public int HeadDim;
        /// <summary>Position written.</summary>
        public int Position;
        /// <summary>Pages per head in the bounds (0: do not update bounds).</summary>
        public int Pages;
        /// <summary>1: write K/V; 0: only update the page bounds.</summary>
        public int WriteCache;
    }

    /// <summary>Launches one append.</summary>
    public void Launch(ArrayView<float> k, ArrayView<float> v, ArrayView<ushort> keys, ArrayView<ushort> values, ArrayView<float> min, ArrayView<float> max, AppendShape shape)
    {
        int n = shape.KvHeads * shape.HeadDim;
        _kernel(new KernelConfig((n + 127) / 128, 128), k, v, keys, values, min, max, shape);
    }

    private static void Run(ArrayView<float> k, ArrayView<float> v, ArrayView<ushort> keys, ArrayView<ushort> values, ArrayView<float> min, ArrayView<float> max, AppendShape s)
    {
        int t = Grid.GlobalIndex.X;
        if (t >= s.KvHeads * s.HeadDim) return;
        int head = t / s.HeadDim, i = t % s.HeadDim;
        if (s.WriteCache != 0)
        {
            long at = ((long)head * s.Capacity + s.Position) * s.HeadDim + i;
            keys[at] = KernelMath.FloatToHalf(k[t]);
            values[at] = KernelMath.FloatToHalf(v[t]);
        }
        if (s.Pages == 0) return;
        long bound = ((long)head * s.Pages + s.Position / 16) * s.HeadDim + i;
        float key = k[t];
        bool first = s.Position % 16 == 0;
        min[bound] = first ? key : MathF.Min(min[bound], key);
        max[bound] = first ? key : MathF.Max(max[bound], key);
    }
}
