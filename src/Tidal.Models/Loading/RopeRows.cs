using Tidal.Core;
using Tidal.Core.Tensors;

namespace Tidal.Models.Loading;

/// <summary>
/// The row order of Q/K projections. Hugging Face rotates pairs (i, i + d/2) of each head; llama.cpp's converter
/// permutes each head's rows so that its RoPE rotates adjacent pairs (2i, 2i + 1): HF row half·d/2 + i of a head is
/// GGUF row 2i + half. These two functions move between the orders exactly.
/// </summary>
public static class RopeRows
{
    /// <summary>A copy of <paramref name="weight"/> ([heads·d, cols], GGUF order) in HF order.</summary>
    public static HostTensor ToHalfSplit(HostTensor weight, int heads) => Permute(weight, heads, toGguf: false);

    /// <summary>A copy of <paramref name="weight"/> ([heads·d, cols], HF order) in GGUF order.</summary>
    public static HostTensor ToInterleaved(HostTensor weight, int heads) => Permute(weight, heads, toGguf: true);

    private static HostTensor Permute(HostTensor weight, int heads, bool toGguf)
    {
        int rows = weight.Shape[0];
        if (heads <= 0 || rows % (2 * heads) != 0) throw new ModelFormatException($"a Q/K weight of {rows} rows cannot be split into {heads} heads of even size.");
        int d = rows / heads, half = d / 2;
        long rowBytes = weight.Shape.Inner.ElementCount * weight.DType.SizeOf();
        var result = HostTensor.Allocate(weight.DType, weight.Shape);
        ReadOnlySpan<byte> from = weight.Bytes;
        Span<byte> to = result.WritableBytes;
        for (int h = 0; h < heads; h++)
            for (int which = 0; which < 2; which++)
                for (int i = 0; i < half; i++)
                {
                    int hfRow = h * d + which * half + i, ggufRow = h * d + 2 * i + which;
                    (int src, int dst) = toGguf ? (hfRow, ggufRow) : (ggufRow, hfRow);
                    from.Slice((int)(src * rowBytes), (int)rowBytes).CopyTo(to.Slice((int)(dst * rowBytes)));
                }
        return result;
    }
}
