using ILGPU;
using ILGPU.Runtime;

namespace Tidal.Kernels.Kernels;

/// <summary>
/// Greedy sampling on the device: the index of the largest logit, lowest index on ties, NaN never winning (all NaN
/// gives 0), so the host reads one int. One group of 256 threads. Reference: Tidal.Core.Reference.Elementwise.Argmax.
/// </summary>
public sealed class ArgmaxKernel
{
    private const int Threads = 256;
    private readonly Action<KernelConfig, ArrayView<float>, ArrayView<int>, int> _kernel;

    /// <summary>Compiles the kernel.</summary>
    public ArgmaxKernel(Accelerator accelerator) => _kernel = accelerator.LoadStreamKernel<ArrayView<float>, ArrayView<int>, int>(Run);

    /// <summary>result[0] = argmax x[0..n).</summary>
    public void Launch(ArrayView<float> x, ArrayView<int> result, int n) => _kernel(new KernelConfig(1, Threads), x, result, n);

    private static bool Better(float v, int i, float bestValue, int bestIndex) => v > bestValue || (v == bestValue && i < bestIndex);

    private static void Run(ArrayView<float> x, ArrayView<int> result, int n)
    {
        ArrayView<float> values = SharedMemory.Allocate<float>(Threads);
        ArrayView<int> indices = SharedMemory.Allocate<int>(Threads);
        int tid = Group.IdxX;
        float best = float.NegativeInfinity;
        int bestIndex = int.MaxValue;
        for (int i = tid; i < n; i += Threads)
        {
            float v = x[i];
            if (!float.IsNaN(v) && Better(v, i, best, bestIndex)) { best = v; bestIndex = i; }
        }
        values[tid] = best;
        indices[tid] = bestIndex;
        Group.Barrier();
        for (int h = Threads / 2; h >= 1; h /= 2)
        {
            if (tid < h && Better(values[tid + h], indices[tid + h], values[tid], indices[tid]))
            {
                values[tid] = values[tid + h];
                indices[tid] = indices[tid + h];
            }
            Group.Barrier();
        }
        if (tid == 0) result[0] = indices[0] == int.MaxValue ? 0 : indices[0];
    }
}
