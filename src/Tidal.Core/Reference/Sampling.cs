using Tidal.Core.Numerics;

namespace Tidal.Core.Reference;

/// <summary>
/// Temperature + top-p (nucleus) sampling defined so that every backend draws the same token for the same seed and
/// step, with no sort and no float sum whose order could differ:
/// <list type="number">
/// <item>z_i = logit_i / T, m = max z (NaN logits never count), e_i = Exp(z_i − m), and each token's mass is the
/// integer q_i = ⌊e_i · 2^32⌋ (exact: e ≤ 1, a power-of-two scale, truncation), so masses add exactly in any order;</item>
/// <item>the nucleus is every token with q_i ≥ τ, τ the largest mass with Σ_{q ≥ τ} q ≥ ⌈p · Σ q⌉ (ties at τ all stay);</item>
/// <item>u = <see cref="Uniform"/>(seed, step), target = ⌊u · kept⌋, and the token is the first id, ascending, at which
/// the running kept mass exceeds target.</item>
/// </list>
/// T = 0 is greedy (<see cref="Elementwise.Argmax"/>), and so is a max of ±∞.
/// </summary>
public static class Sampling
{
    /// <summary>2^32: the fixed-point scale of a token's mass.</summary>
    public const float MassScale = 4294967296f;

    /// <summary>Checks sampling options the same way for every backend.</summary>
    /// <exception cref="ArgumentOutOfRangeException">Temperature negative or not finite, or topP outside (0, 1].</exception>
    public static void Validate(float temperature, float topP)
    {
        if (!(temperature >= 0) || float.IsInfinity(temperature))
            throw new ArgumentOutOfRangeException(nameof(temperature), temperature, "temperature must be finite and ≥ 0.");
        if (!(topP > 0 && topP <= 1)) throw new ArgumentOutOfRangeException(nameof(topP), topP, "topP must be in (0, 1].");
    }

    /// <summary>The token drawn from <paramref name="logits"/> at <paramref name="step"/> of the stream <paramref name="seed"/>.</summary>
    public static int Sample(ReadOnlySpan<float> logits, float temperature, float topP, ulong seed, long step)
    {
        if (logits.IsEmpty) throw new ArgumentException("logits is empty.", nameof(logits));
        Validate(temperature, topP);
        if (temperature == 0) return Elementwise.Argmax(logits);
        float m = float.NegativeInfinity;
        foreach (float x in logits) { float z = x / temperature; if (z > m) m = z; }
        if (float.IsInfinity(m)) return Elementwise.Argmax(logits); // all −∞, or a +∞ logit that takes all the mass
        var q = new ulong[logits.Length];
        ulong total = 0;
        for (int i = 0; i < q.Length; i++) total += q[i] = Mass(logits[i], temperature, m);
        ulong needed = Needed(topP, total);
        ulong[] sorted = (ulong[])q.Clone();
        Array.Sort(sorted);
        ulong threshold = 0, cumulative = 0;
        for (int i = sorted.Length - 1; i >= 0; i--)
        {
            cumulative += sorted[i];
            if (cumulative >= needed) { threshold = sorted[i]; break; }
        }
        ulong kept = 0;
        foreach (ulong v in q) if (v >= threshold) kept += v;
        ulong target = Target(Uniform(seed, step), kept), running = 0;
        for (int i = 0; i < q.Length; i++)
            if (q[i] >= threshold && (running += q[i]) > target) return i;
        throw new InvalidOperationException("unreachable: the running mass reaches the kept mass.");
    }

    /// <summary>⌊Exp(x/T − m) · 2^32⌋, 0 for NaN.</summary>
    public static ulong Mass(float logit, float temperature, float max)
    {
        float e = TidalMath.Exp(logit / temperature - max);
        return float.IsNaN(e) ? 0 : (ulong)(e * MassScale);
    }

    /// <summary>⌈p · total⌉ in double arithmetic, at least 1 (written without Math.Ceiling so kernels compute the same).</summary>
    public static ulong Needed(float topP, ulong total)
    {
        double product = topP * (double)total;
        ulong needed = (ulong)product;
        if (needed < product) needed++;
        return needed == 0 ? 1 : needed;
    }

    /// <summary>⌊u · kept⌋, below kept.</summary>
    public static ulong Target(double u, ulong kept)
    {
        ulong target = (ulong)(u * kept);
        return target >= kept ? kept - 1 : target;
    }

    /// <summary>A uniform double in [0, 1) from (seed, step): SplitMix64 of seed + step · golden ratio, top 53 bits.</summary>
    public static double Uniform(ulong seed, long step)
    {
        ulong x = seed + (ulong)step * 0x9E37_79B9_7F4A_7C15ul;
        x = (x ^ (x >> 30)) * 0xBF58_476D_1CE4_E5B9ul;
        x = (x ^ (x >> 27)) * 0x94D0_49BB_1331_11EBul;
        x ^= x >> 31;
        return (x >> 11) * (1.0 / (1ul << 53));
    }
}
