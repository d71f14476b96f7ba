using Tidal.Core;
using Tidal.Core.Backends;
using Tidal.Core.Reference;

namespace Tidal.Models.Engine;

/// <summary>
/// A KV cache filled with random keys and values in [−1, 1), with Quest's page bounds to match: what a decode
/// benchmark on random weights needs in place of a prefill (which would compute nothing meaningful and, at 128K
/// tokens, take long). Decode time does not depend on the values, only on the lengths.
/// </summary>
internal static class RandomContext
{
    public static void Fill(DecodeState state, IBackend backend, int length, ulong seed)
    {
        for (int l = 0; l < state.Keys.Length; l++)
        {
            ulong layer = seed * 0x1_0000_0001ul + (ulong)l * 2;
            Fill(backend, state.Keys[l], length, layer, state.PageMin[l], state.PageMax[l]);
            Fill(backend, state.Values[l], length, layer + 1, null, null);
        }
    }

    /// <summary>Positions [0, length) of a cache [kvHeads, capacity, d]; the rest stays zero (never read).</summary>
    private static void Fill(IBackend backend, ITensor cache, int length, ulong stream, ITensor? pageMin, ITensor? pageMax)
    {
        int kvHeads = cache.Shape[0], capacity = cache.Shape[1], d = cache.Shape[2];
        var values = new float[cache.Shape.ElementCount];
        bool half = cache.DType == DType.F16;
        Parallel.For(0, kvHeads * length, row =>
        {
            int h = row / length, p = row % length;
            Span<float> target = values.AsSpan((h * capacity + p) * d, d);
            for (int i = 0; i < d; i++)
            {
                float x = (float)(2 * Sampling.Uniform(stream, (long)row * d + i) - 1);
                target[i] = half ? (float)(Half)x : x; // the value the cache will hold
            }
        });
        if (half) backend.Upload<Half>(Array.ConvertAll(values, v => (Half)v), cache);
        else backend.Upload<float>(values, cache);
        if (pageMin is null || pageMax is null) return;
        var min = new float[pageMin.Shape.ElementCount];
        var max = new float[pageMax.Shape.ElementCount];
        Quest.BuildPageBounds(new KvView<float>(values, values, kvHeads, capacity, d, length), min, max); // only keys are read
        backend.Upload<float>(min, pageMin);
        backend.Upload<float>(max, pageMax);
    }
}
