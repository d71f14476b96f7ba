namespace Tidal.Core.Reference;

/// <summary>How the two values of each rotated pair sit in a head vector.</summary>
public enum RopeLayout
{
    /// <summary>Pairs (i, i + d/2): Hugging Face Llama checkpoints.</summary>
    HalfSplit,
    /// <summary>Pairs (2i, 2i + 1): GGUF and llama2.c.</summary>
    Interleaved,
}

/// <summary>Llama-3.1 ("llama3") frequency scaling of RoPE.</summary>
/// <param name="Factor">Divisor of the low frequencies.</param>
/// <param name="LowFreqFactor">Wavelengths above original/LowFreqFactor are fully scaled.</param>
/// <param name="HighFreqFactor">Wavelengths below original/HighFreqFactor are kept.</param>
/// <param name="OriginalContext">The pretraining context length.</param>
public sealed record RopeScaling(float Factor, float LowFreqFactor, float HighFreqFactor, int OriginalContext)
{
    /// <summary>
    /// The same scaling as per-frequency divisors (llama.cpp's rope_freqs tensor): inv_freq[i] / divisor[i] is the
    /// scaled frequency. 1 keeps a frequency, Factor scales it fully, in between the llama3 blend.
    /// </summary>
    public float[] Divisors(int headDim, float theta)
    {
        float[] plain = RopeTable.ComputeInverseFrequencies(headDim, theta, null), scaled = RopeTable.ComputeInverseFrequencies(headDim, theta, this);
        return plain.Select((f, i) => f / scaled[i]).ToArray();
    }
}

/// <summary>
/// Rotary position embedding: the per-position cos/sin table (computed once on the host, shared by every backend so
/// their rotations agree bit for bit) and the rotation itself.
/// </summary>
public sealed class RopeTable
{
    private readonly float[] _cos;
    private readonly float[] _sin;

    /// <summary>
    /// Builds cos/sin for positions [0, maxPositions). The inverse frequencies and angles are computed in binary32
    /// exactly as Hugging Face does (θ^(2i/d) in float, 1/that, position·inv_freq as one float multiply), so angles match
    /// transformers bit for bit; cos and sin of each float angle are then rounded from double precision.
    /// </summary>
    /// <exception cref="ArgumentException">headDim odd or ≤ 0, theta ≤ 0, or maxPositions ≤ 0.</exception>
    /// <param name="divisors">Optional per-frequency divisors (GGUF's rope_freqs), applied instead of <paramref name="scaling"/>.</param>
    public RopeTable(int headDim, float theta, int maxPositions, RopeScaling? scaling = null, IReadOnlyList<float>? divisors = null)
    {
        if (headDim <= 0 || headDim % 2 != 0) throw new ArgumentException($"headDim must be even and > 0, got {headDim}.", nameof(headDim));
        if (!(theta > 0)) throw new ArgumentException($"theta must be > 0, got {theta}.", nameof(theta));
        if (maxPositions <= 0) throw new ArgumentException($"maxPositions must be > 0, got {maxPositions}.", nameof(maxPositions));
        HeadDim = headDim;
        MaxPositions = maxPositions;
        InverseFrequencies = ComputeInverseFrequencies(headDim, theta, scaling);
        if (divisors is not null)
        {
            if (divisors.Count != headDim / 2) throw new ArgumentException($"divisors must hold headDim/2 = {headDim / 2} values, got {divisors.Count}.", nameof(divisors));
            for (int i = 0; i < divisors.Count; i++) InverseFrequencies[i] /= divisors[i];
        }
        int half = headDim / 2;
        _cos = new float[(long)maxPositions * half <= Array.MaxLength ? maxPositions * half : throw new ArgumentException("table too large.", nameof(maxPositions))];
        _sin = new float[_cos.Length];
        for (int p = 0; p < maxPositions; p++)
            for (int i = 0; i < half; i++)
            {
                float angle = (float)p * InverseFrequencies[i];
                _cos[p * half + i] = (float)Math.Cos(angle);
                _sin[p * half + i] = (float)Math.Sin(angle);
            }
    }

    /// <summary>Head dimension d.</summary>
    public int HeadDim { get; }

    /// <summary>Positions the table covers.</summary>
    public int MaxPositions { get; }

    /// <summary>inv_freq[i] for i in [0, d/2), after scaling.</summary>
    public float[] InverseFrequencies { get; }

    /// <summary>cos of each pair's angle at <paramref name="position"/> (d/2 values).</summary>
    public ReadOnlySpan<float> Cos(int position) => _cos.AsSpan(CheckPosition(position) * (HeadDim / 2), HeadDim / 2);

    /// <summary>sin of each pair's angle at <paramref name="position"/> (d/2 values).</summary>
    public ReadOnlySpan<float> Sin(int position) => _sin.AsSpan(CheckPosition(position) * (HeadDim / 2), HeadDim / 2);

    /// <summary>The whole cos table, [maxPositions, d/2] (for uploading to a device).</summary>
    public ReadOnlySpan<float> CosTable => _cos;

    /// <summary>The whole sin table, [maxPositions, d/2].</summary>
    public ReadOnlySpan<float> SinTable => _sin;

    /// <summary>Rotates every head of <paramref name="x"/> ([heads, d]) in place for <paramref name="position"/> (see <see cref="Rope.Rotate"/>).</summary>
    public void Apply(Span<float> x, int position, RopeLayout layout) => Rope.Rotate(x, HeadDim, Cos(position), Sin(position), layout);

    /// <summary>Hugging Face's inverse frequencies in binary32, with the llama3 scaling rule when given.</summary>
    public static float[] ComputeInverseFrequencies(int headDim, float theta, RopeScaling? scaling)
    {
        var inv = new float[headDim / 2];
        for (int i = 0; i < inv.Length; i++)
        {
            float exponent = (float)(2 * i) / headDim;
            inv[i] = 1f / (float)Math.Pow(theta, exponent);
        }
        if (scaling is null) return inv;
        if (!(scaling.Factor > 0) || !(scaling.LowFreqFactor > 0) || !(scaling.HighFreqFactor > scaling.LowFreqFactor) || scaling.OriginalContext <= 0)
            throw new ArgumentException($"invalid llama3 rope scaling {scaling}.", nameof(scaling));
        float lowWavelen = scaling.OriginalContext / scaling.LowFreqFactor;
        float highWavelen = scaling.OriginalContext / scaling.HighFreqFactor;
        for (int i = 0; i < inv.Length; i++)
        {
            float wavelen = 2f * MathF.PI / inv[i];
            if (wavelen < highWavelen) continue;
            if (wavelen > lowWavelen) { inv[i] /= scaling.Factor; continue; }
            float smooth = (scaling.OriginalContext / wavelen - scaling.LowFreqFactor) / (scaling.HighFreqFactor - scaling.LowFreqFactor);
            inv[i] = (1f - smooth) * inv[i] / scaling.Factor + smooth * inv[i];
        }
        return inv;
    }

    private int CheckPosition(int position)
    {
        if ((uint)position >= (uint)MaxPositions)
            throw new ArgumentOutOfRangeException(nameof(position), position, $"RoPE table covers positions [0, {MaxPositions}).");
        return position;
    }
}

/// <summary>The rotation of rotary position embedding.</summary>
public static class Rope
{
    /// <summary>
    /// Rotates every head of <paramref name="x"/> ([heads, headDim]) in place by the angles whose cos and sin are given
    /// (headDim/2 each, one per pair): (a, b) → (a·cos − b·sin, b·cos + a·sin), each product rounded on its own (no fma),
    /// so GPU kernels must use mul.rn/sub.rn/add.rn to match.
    /// </summary>
    /// <exception cref="ArgumentException">x is not a whole number of heads, or cos/sin are not headDim/2 long.</exception>
    public static void Rotate(Span<float> x, int headDim, ReadOnlySpan<float> cos, ReadOnlySpan<float> sin, RopeLayout layout)
    {
        if (headDim <= 0 || headDim % 2 != 0) throw new ArgumentException($"headDim must be even and > 0, got {headDim}.", nameof(headDim));
        if (x.Length % headDim != 0) throw new ArgumentException($"x has {x.Length} elements, not a multiple of headDim {headDim}.", nameof(x));
        int half = headDim / 2;
        if (cos.Length != half || sin.Length != half) throw new ArgumentException($"cos and sin must hold headDim/2 = {half} values.", nameof(cos));
        for (int h = 0; h < x.Length; h += headDim)
        {
            Span<float> head = x.Slice(h, headDim);
            for (int i = 0; i < half; i++)
            {
                int ia = layout == RopeLayout.HalfSplit ? i : 2 * i;
                int ib = layout == RopeLayout.HalfSplit ? i + half : 2 * i + 1;
                float a = head[ia], b = head[ib];
                float ac = a * cos[i], bs = b * sin[i], bc = b * cos[i], aSin = a * sin[i];
                head[ia] = ac - bs;
                head[ib] = bc + aSin;
            }
        }
    }
}
