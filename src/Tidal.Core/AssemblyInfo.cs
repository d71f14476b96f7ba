// Scratch buffers are cleared explicitly where it matters; skipping the implicit zeroing of every stackalloc keeps the
// per-token dot products of attention cheap.
[module: System.Runtime.CompilerServices.SkipLocalsInit]
