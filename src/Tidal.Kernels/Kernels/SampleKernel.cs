using ILGPU;
using ILGPU.Runtime;
using Tidal.Core.Reference;

namespace Tidal.Kernels.Kernels;

/// <summary>
/// Temperature + top-p sampling on the device, so the host reads one int instead of the logits. One group of 256
/// threads: the max, the integer masses (kept in global scratch) and their total; the nucleus threshold by a radix
/// select over the 33-bit masses (3 passes of 11 bits; mass histograms in shared memory with integer atomics, exact in
/// any order); then the kept mass, the draw, and a block scan over contiguous id ranges to find the token.
/// Reference: Tidal.Core.Reference.Sampling.Sample, the same token.
/// </summary>
public sealed class SampleKernel
{
    private const int Threads = 256;
    private const int Bins = 2048;

    /// <summary>Arguments of one launch.</summary>
    public struct Args
    {
        /// <summary>Logits [N].</summary>
        public ArrayView<float> Logits;
        /// <summary>Mass scratch [N].</summary>
        public ArrayView<ulong> Masses;
        /// <summary>result[0] = the token.</summary>
        public ArrayView<int> Result;
        /// <summary>Vocabulary size.</summary>
        public int N;
        /// <summary>Temperature, &gt; 0.</summary>
        public float Temperature;
        /// <summary>Nucleus mass in (0, 1].</summary>
        public float TopP;
        /// <summary>Uniform draw in [0, 1) (<see cref="Sampling.Uniform"/>, computed on the host).</summary>
        public double Uniform;
    }

    private readonly Action<KernelConfig, Args> _kernel;

    /// <summary>Compiles the kernel.</summary>
    public SampleKernel(Accelerator accelerator) => _kernel = accelerator.LoadStreamKernel<Args>(Run);

    /// <summary>Launches one group.</summary>
    public void Launch(Args args) => _kernel(new KernelConfig(1, Threads), args);

    private static void Run(Args a)
    {
        ArrayView<ulong> histogram = SharedMemory.Allocate<ulong>(Bins);
        ArrayView<ulong> scan = SharedMemory.Allocate<ulong>(Threads);
        ArrayView<float> maxima = SharedMemory.Allocate<float>(Threads);
        ArrayView<ulong> found = SharedMemory.Allocate<ulong>(2);
        ArrayView<int> token = SharedMemory.Allocate<int>(1);
        int tid = Group.IdxX, n = a.N;

        float m = float.NegativeInfinity;
        for (int i = tid; i < n; i += Threads) { float z = a.Logits[i] / a.Temperature; if (z > m) m = z; }
        maxima[tid] = m;
        Group.Barrier();
        for (int h = Threads / 2; h >= 1; h /= 2)
        {
            if (tid < h && maxima[tid + h] > maxima[tid]) maxima[tid] = maxima[tid + h];
            Group.Barrier();
        }
        m = maxima[0];
        if (float.IsInfinity(m)) { Argmax(a, tid); return; }

        ulong local = 0;
        for (int i = tid; i < n; i += Threads)
        {
            float e = KernelMath.Exp(KernelMath.Sub(a.Logits[i] / a.Temperature, m));
            ulong q = float.IsNaN(e) ? 0ul : (ulong)(e * Sampling.MassScale);
            a.Masses[i] = q;
            local += q;
        }
        BlockScan.Exclusive(scan, local, out ulong total);
        ulong remaining = Sampling.Needed(a.TopP, total), prefix = 0, mask = 0;

        // Radix select by mass: bits 32..22, 21..11, 10..0 of the masses, largest digit first.
        for (int shift = 22; shift >= 0; shift -= 11)
        {
            for (int b = tid; b < Bins; b += Threads) histogram[b] = 0;
            Group.Barrier();
            for (int i = tid; i < n; i += Threads)
            {
                ulong q = a.Masses[i];
                if ((q & mask) == prefix) Atomic.Add(ref histogram[(int)((q >> shift) & 0x7FF)], q);
            }
            Group.Barrier();
            int top = Bins - 8 * tid;
            ulong sum = 0;
            for (int b = top - 1; b >= top - 8; b--) sum += histogram[b];
            ulong before = BlockScan.Exclusive(scan, sum, out ulong _);
            if (before < remaining && remaining <= before + sum)
            {
                ulong r = remaining - before;
                int digit = top - 1;
                for (; digit > top - 8 && histogram[digit] < r; digit--) r -= histogram[digit];
                found[0] = (ulong)digit;
                found[1] = r;
            }
            Group.Barrier();
            prefix |= found[0] << shift;
            mask |= 0x7FFul << shift;
            remaining = found[1];
            Group.Barrier();
        }

        // The nucleus is every mass ≥ prefix; thread t owns ids [t·C, t·C + C) so the running mass follows id order.
        int per = (n + Threads - 1) / Threads, first = tid * per, end = Math.Min(n, first + per);
        ulong mine = 0;
        for (int i = first; i < end; i++) { ulong q = a.Masses[i]; if (q >= prefix) mine += q; }
        ulong start = BlockScan.Exclusive(scan, mine, out ulong kept);
        ulong target = Sampling.Target(a.Uniform, kept);
        if (start <= target && target < start + mine)
        {
            ulong running = start;
            for (int i = first; i < end; i++)
            {
                ulong q = a.Masses[i];
                if (q >= prefix) { running += q; if (running > target) { token[0] = i; break; } }
            }
        }
        Group.Barrier();
        if (tid == 0) a.Result[0] = token[0];
    }

    /// <summary>Greedy fallback when the scaled max is ±∞: the reference's argmax (lowest index, NaN never wins).</summary>
    private static void Argmax(in Args a, int tid)
    {
        if (tid != 0) return;
        float best = float.NegativeInfinity;
        int index = -1;
        for (int i = 0; i < a.N; i++) { float v = a.Logits[i]; if (!float.IsNaN(v) && (index < 0 || v > best)) { best = v; index = i; } }
        a.Result[0] = index < 0 ? 0 : index;
    }
}
