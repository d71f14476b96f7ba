using Tidal.Core.Numerics;

namespace Tidal.Core.Reference;

/// <summary>Matrix–vector products with F32, F16 or BF16 weights and F32 activations: the bulk of decode time.</summary>
public static class Linear
{
    /// <summary>Work (rows × cols) above which rows are split across threads. Rows are independent, so threading never changes bits.</summary>
    private const long ParallelThreshold = 1 << 18;

    /// <summary>y[r] = Σ_c w[r, c] · x[c], each row in the feature-axis order of <see cref="Reduction"/>. w is row-major [rows, cols].</summary>
    /// <exception cref="ArgumentException">w is not [y.Length, x.Length].</exception>
    public static void MatVec<TW>(ReadOnlySpan<TW> w, ReadOnlySpan<float> x, Span<float> y) where TW : unmanaged =>
        MatMul(w, x, y, batch: 1);

    /// <summary>
    /// Y[b, r] = Σ_c w[r, c] · X[b, c] for a small batch: X is [batch, cols], Y is [batch, rows], w is [rows, cols].
    /// Each output is the same canonical dot as <see cref="MatVec{TW}"/>.
    /// </summary>
    /// <exception cref="ArgumentException">Shapes do not agree or batch ≤ 0.</exception>
    public static unsafe void MatMul<TW>(ReadOnlySpan<TW> w, ReadOnlySpan<float> x, Span<float> y, int batch) where TW : unmanaged
    {
        if (batch <= 0) throw new ArgumentException($"batch must be > 0, got {batch}.", nameof(batch));
        if (x.Length % batch != 0 || y.Length % batch != 0)
            throw new ArgumentException($"x ({x.Length}) and y ({y.Length}) must hold {batch} rows each.", nameof(batch));
        int cols = x.Length / batch, rows = y.Length / batch;
        if (cols == 0 || rows == 0) throw new ArgumentException("x and y must not be empty.", nameof(x));
        if (w.Length != (long)rows * cols)
            throw new ArgumentException($"w has {w.Length} elements but must be [{rows}, {cols}] = {(long)rows * cols}.", nameof(w));

        fixed (TW* pw = w)
        fixed (float* px = x)
        fixed (float* py = y)
        {
            var job = new Job<TW>(pw, px, py, rows, cols, batch);
            if ((long)rows * cols * batch < ParallelThreshold || Environment.ProcessorCount == 1)
            {
                job.Run(0, rows);
            }
            else
            {
                int blocks = Math.Min(rows, Environment.ProcessorCount * 4);
                Parallel.For(0, blocks, b => job.Run((int)((long)rows * b / blocks), (int)((long)rows * (b + 1) / blocks)));
            }
        }
    }

    private readonly unsafe struct Job<TW>(TW* w, float* x, float* y, int rows, int cols, int batch) where TW : unmanaged
    {
        public void Run(int rowStart, int rowEnd)
        {
            for (int r = rowStart; r < rowEnd; r++)
            {
                var row = new ReadOnlySpan<TW>(w + (long)r * cols, cols);
                for (int b = 0; b < batch; b++)
                    y[(long)b * rows + r] = Reduction.Dot(row, new ReadOnlySpan<float>(x + (long)b * cols, cols));
            }
        }
    }
}
