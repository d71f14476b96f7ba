using Tidal.Core.Reference;
using Tidal.Core.Tensors;

namespace Tidal.Core.Backends;

/// <summary>
/// The operations one decode step needs, over tensors the backend owns. Models drive the CPU reference and the GPU
/// kernels through this one interface, so the forward pass is written once. Operations are issued in order and may run
/// asynchronously on a device; only <see cref="Download{T}"/> and <see cref="Argmax"/> wait for the results.
/// Every operation has the shapes and arithmetic of the <see cref="Reference"/> op it names.
/// </summary>
public interface IBackend : IDisposable
{
    /// <summary>What runs the operations, e.g. "CPU (SIMD reference, 2 threads)" or "CUDA: NVIDIA H100".</summary>
    string Name { get; }

    /// <summary>The dtype this backend keeps KV caches in (the CPU reference: F32; GPUs: F16).</summary>
    DType KvCacheType { get; }

    /// <summary>A zeroed tensor.</summary>
    ITensor Allocate(DType type, Shape shape);

    /// <summary>Copies host elements into <paramref name="destination"/> (same element count and dtype).</summary>
    void Upload<T>(ReadOnlySpan<T> source, ITensor destination) where T : unmanaged;

    /// <summary>Waits for pending work and copies <paramref name="source"/> to the host.</summary>
    void Download<T>(ITensor source, Span<T> destination) where T : unmanaged;

    /// <summary><see cref="Elementwise.Embed{T}"/>: row <paramref name="token"/> of table [vocab, dim] into output [dim].</summary>
    void Embed(ITensor table, int token, ITensor output);

    /// <summary><see cref="Reference.RmsNorm.Apply{TW}"/> on each row: x, y [rows, n] (a vector is one row), weight [n].</summary>
    void RmsNorm(ITensor x, ITensor weight, float eps, ITensor y);

    /// <summary><see cref="Linear.MatMul{TW}"/>: weight [rows, cols], x [batch, cols] → y [batch, rows] (batch 1 for a vector).</summary>
    void MatMul(ITensor weight, ITensor x, ITensor y);

    /// <summary>
    /// <see cref="Reference.Rope.Rotate"/> in place: x [rows, heads, d] (a chunk of consecutive tokens) or [heads, d]
    /// (one token); row r takes row <paramref name="position"/> + r of the cos/sin tables [maxPositions, d/2].
    /// </summary>
    void Rope(ITensor x, ITensor cos, ITensor sin, int position, RopeLayout layout);

    /// <summary><see cref="Elementwise.AddInPlace"/>: x += y.</summary>
    void AddInPlace(ITensor x, ITensor y);

    /// <summary><see cref="Elementwise.SwiGlu"/>: output = SiLU(gate) · up.</summary>
    void SwiGlu(ITensor gate, ITensor up, ITensor output);

    /// <summary>
    /// Writes k and v (F32, [rows, kvHeads, d] or [kvHeads, d]: one row) into caches [kvHeads, capacity, d] (F32 or
    /// F16), row r at position <paramref name="position"/> + r.
    /// </summary>
    void AppendKv(ITensor keys, ITensor values, ITensor k, ITensor v, int position);

    /// <summary><see cref="Reference.Attention.DecodeDense{T}"/> over the first <paramref name="length"/> positions; logits [nHeads, length] when given.</summary>
    void Attention(ITensor q, ITensor keys, ITensor values, int length, ITensor output, ITensor? logits = null);

    /// <summary>
    /// Causal attention of a chunk of consecutive tokens (prefill, cache correction): row r of q attends to positions
    /// [0, <paramref name="first"/> + r) exactly as <see cref="Attention"/> with that length would, bit for bit.
    /// q is [rows, width] with the query in the first nHeads · d values of each row (width may be larger: fused QKV
    /// rows); output is [rows, nHeads · d].
    /// </summary>
    void CausalAttention(ITensor q, ITensor keys, ITensor values, int first, ITensor output);

    /// <summary>
    /// <see cref="Reference.Attention.DecodeSparse{T}"/>: gathered attention over indices [nHeads, k] (per query head),
    /// [kvHeads, k] (per KV head) or [1, k] (shared), told apart by their first dimension.
    /// </summary>
    void SparseAttention(ITensor q, ITensor keys, ITensor values, int length, ITensor indices, ITensor output);

    /// <summary>
    /// <see cref="TopK"/> selection from logits [nHeads, length] into indices: [nHeads, min(budget, length)] per
    /// query head, or [groups, min(budget, length)] with each group of nHeads/groups heads aggregated.
    /// </summary>
    void SelectTopK(ITensor logits, int length, int budget, ForcedTokens forced, ITensor indices);

    /// <summary>
    /// <see cref="Quest.UpdatePageBounds{T}"/>: folds key [rows, kvHeads, d] or [kvHeads, d] (one row) into bounds
    /// [kvHeads, maxPages, d], row r at position <paramref name="position"/> + r, rows in order.
    /// </summary>
    void UpdatePageBounds(ITensor key, int position, ITensor min, ITensor max);

    /// <summary>
    /// Quest per query head: <see cref="Quest.ScorePages"/> then <see cref="Quest.SelectTokens"/> into indices
    /// [nHeads, <see cref="Quest.SelectedTokenCount"/>(length, pageBudget)].
    /// </summary>
    void SelectPages(ITensor q, ITensor min, ITensor max, int length, int pageBudget, ITensor indices);

    /// <summary><see cref="Elementwise.Argmax"/>; waits for pending work.</summary>
    int Argmax(ITensor logits);

    /// <summary><see cref="Sampling.Sample"/> (temperature 0 is <see cref="Argmax"/>); waits for pending work.</summary>
    int Sample(ITensor logits, float temperature, float topP, ulong seed, long step);
}
