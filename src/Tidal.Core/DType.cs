namespace Tidal.Core;

/// <summary>Element types Tidal stores weights, caches and activations in.</summary>
public enum DType
{
    /// <summary>IEEE 754 binary32.</summary>
    F32,
    /// <summary>IEEE 754 binary16 (<see cref="System.Half"/>).</summary>
    F16,
    /// <summary>bfloat16: the upper 16 bits of a binary32, stored as <see cref="ushort"/> (<see cref="BFloat16"/>).</summary>
    BF16,
    /// <summary>32-bit signed integers: token ids and selected-position index sets, never weights.</summary>
    I32,
}

/// <summary>Facts about <see cref="DType"/> values.</summary>
public static class DTypes
{
    /// <summary>Size of one element in bytes.</summary>
    public static int SizeOf(this DType type) => type switch
    {
        DType.F32 => 4,
        DType.F16 => 2,
        DType.BF16 => 2,
        DType.I32 => 4,
        _ => throw new ArgumentOutOfRangeException(nameof(type), type, "Unknown dtype."),
    };

    /// <summary>The CLR element type that holds one value of <paramref name="type"/>.</summary>
    public static Type ClrType(this DType type) => type switch
    {
        DType.F32 => typeof(float),
        DType.F16 => typeof(Half),
        DType.BF16 => typeof(BFloat16),
        DType.I32 => typeof(int),
        _ => throw new ArgumentOutOfRangeException(nameof(type), type, "Unknown dtype."),
    };

    /// <summary>The dtype whose elements are stored as <typeparamref name="T"/>.</summary>
    /// <exception cref="ArgumentException"><typeparamref name="T"/> is not float, Half or BFloat16.</exception>
    public static DType Of<T>() where T : unmanaged
    {
        if (typeof(T) == typeof(float)) return DType.F32;
        if (typeof(T) == typeof(Half)) return DType.F16;
        if (typeof(T) == typeof(BFloat16)) return DType.BF16;
        if (typeof(T) == typeof(int)) return DType.I32;
        throw new ArgumentException($"{typeof(T).Name} is not a Tidal element type (float, Half, BFloat16, int).", nameof(T));
    }

    /// <summary>Parses the names used by safetensors ("F32", "F16", "BF16"), case-insensitively.</summary>
    /// <exception cref="FormatException">The name is not a supported dtype.</exception>
    public static DType Parse(string name) => name.ToUpperInvariant() switch
    {
        "F32" or "FLOAT32" => DType.F32,
        "F16" or "FLOAT16" => DType.F16,
        "BF16" or "BFLOAT16" => DType.BF16,
        "I32" or "INT32" => DType.I32,
        _ => throw new FormatException($"Unsupported dtype '{name}' (supported: F32, F16, BF16, I32)."),
    };
}
