using Tidal.Core.Numerics;

namespace Tidal.Core;

/// <summary>
/// A bfloat16 value: the upper 16 bits of an IEEE binary32, stored as a <see cref="ushort"/> so that spans of it
/// are layout-identical to the raw bits in safetensors/GGUF files and GPU buffers.
/// </summary>
/// <param name="Bits">The raw 16 bits.</param>
public readonly record struct BFloat16(ushort Bits)
{
    /// <summary>Widens exactly: the bits become the upper half of a binary32.</summary>
    public static explicit operator float(BFloat16 value) => BitConverter.Int32BitsToSingle(value.Bits << 16);

    /// <summary>Rounds to nearest, ties to even; NaN stays NaN (the quiet bit is set so the payload cannot vanish into infinity).</summary>
    public static explicit operator BFloat16(float value) => new(Conversions.FloatToBFloat16Bits(value));

    /// <inheritdoc/>
    public override string ToString() => ((float)this).ToString(System.Globalization.CultureInfo.InvariantCulture);
}
