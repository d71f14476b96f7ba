using Tidal.Core;
using Tidal.Core.Backends;
using Tidal.Core.Reference;
using Tidal.Core.Tensors;
using Tidal.Models.Config;

namespace Tidal.Models.Engine;

/// <summary>
/// The Llama forward pass over a few new tokens, written once for every backend. Prefill runs it densely on chunks;
/// a decode step runs it on one token with a sparse-attention policy.
/// </summary>
public static class Decoder
{
    /// <summary>
    /// Feeds <paramref name="tokens"/> at positions [state.Length, state.Length + n), appending their K/V, and leaves
    /// the last token's logits in <see cref="DecodeState.Logits"/> when <paramref name="computeLogits"/>.
    /// Chunks of more than one token must use a dense policy.
    /// </summary>
    public static void Forward(ModelWeights weights, DecodeState state, ReadOnlySpan<int> tokens, AttentionPolicy policy, bool computeLogits)
    {
        if (tokens.Length == 0) return;
        if (state.Length + tokens.Length > state.Capacity) throw new ContextLengthExceededException(state.Length + tokens.Length, state.Capacity);
        for (int start = 0; start < tokens.Length; start += state.Chunk)
        {
            int n = Math.Min(state.Chunk, tokens.Length - start);
            ForwardChunk(weights, state, tokens.Slice(start, n), policy, computeLogits && start + n == tokens.Length);
        }
    }

    private static void ForwardChunk(ModelWeights w, DecodeState s, ReadOnlySpan<int> tokens, AttentionPolicy policy, bool computeLogits)
    {
        IBackend b = w.Backend;
        LlamaConfig c = w.Config;
        int n = tokens.Length, pos = s.Length, d = c.HeadDim, ff = c.IntermediateSize, qWidth = c.Heads * d, kvWidth = c.KvHeads * d;
        if (n > 1 && policy.Schedule.Any(m => m != LayerAttention.Dense))
            throw new ArgumentException("a multi-token chunk (prefill) must use dense attention.", nameof(policy));
        foreach (int token in tokens)
            if ((uint)token >= (uint)c.VocabSize) throw new ArgumentOutOfRangeException(nameof(tokens), token, $"token id outside the vocabulary of {c.VocabSize}.");

        ITensor x = s.X.Slice(0, n), normed = s.Normed.Slice(0, n), attended = s.Attended.Slice(0, n);
        ITensor projected = s.Projected.Slice(0, n), hidden = s.Hidden.Slice(0, n);
        // Each projection's outputs for the whole chunk, in regions one after another (see Project).
        ITensor qkv = s.Qkv.Slice(0, n).Reshape(new Shape(n * (qWidth + 2 * kvWidth)));
        ITensor q = qkv.Slice(0, n * qWidth).Reshape(new Shape(n, c.Heads, d));
        ITensor k = qkv.Slice(n * qWidth, n * kvWidth).Reshape(new Shape(n, c.KvHeads, d));
        ITensor v = qkv.Slice(n * (qWidth + kvWidth), n * kvWidth).Reshape(new Shape(n, c.KvHeads, d));
        ITensor gateUp = s.GateUp.Slice(0, n).Reshape(new Shape(2 * n * ff));
        ITensor gate = gateUp.Slice(0, n * ff).Reshape(new Shape(n, ff)), up = gateUp.Slice(n * ff, n * ff).Reshape(new Shape(n, ff));
        // Attention's views of the queries and outputs: one token's heads, or a chunk's rows.
        ITensor queries = n == 1 ? q.Reshape(new Shape(c.Heads, d)) : q.Reshape(new Shape(n, qWidth));
        ITensor outputs = n == 1 ? attended.Reshape(new Shape(c.Heads, d)) : attended;
        for (int r = 0; r < n; r++) b.Embed(w.Embedding, tokens[r], x.Slice(r, 1).Reshape(new Shape(c.HiddenSize)));

        for (int l = 0; l < c.Layers; l++)
        {
            LayerWeights lw = w.Layers[l];
            b.RmsNorm(x, lw.AttentionNorm, c.RmsNormEps, normed);
            Project(b, lw.Qkv, normed, qkv, q, k, v);
            b.Rope(q, s.RopeCos, s.RopeSin, pos, RopeLayout.HalfSplit); // token r at pos + r
            b.Rope(k, s.RopeCos, s.RopeSin, pos, RopeLayout.HalfSplit);
            b.AppendKv(s.Keys[l], s.Values[l], k, v, pos);
            b.UpdatePageBounds(k, pos, s.PageMin[l], s.PageMax[l]);
            if (n == 1) Attend(b, s, policy, l, queries, pos + 1, outputs, c);
            else b.CausalAttention(queries, s.Keys[l], s.Values[l], pos + 1, outputs); // the token at pos + r sees [0, pos + r]
            b.MatMul(lw.Output, attended, projected);
            b.AddInPlace(x, projected);
            b.RmsNorm(x, lw.MlpNorm, c.RmsNormEps, normed);
            Project(b, lw.GateUp, normed, gateUp, gate, up);
            b.SwiGlu(gate, up, hidden);
            b.MatMul(lw.Down, hidden, projected);
            b.AddInPlace(x, projected);
        }
        s.Length = pos + n;
        if (!computeLogits) return;
        b.RmsNorm(Row(x, n - 1), w.FinalNorm, c.RmsNormEps, Row(normed, 0));
        b.MatMul(w.LmHead, Row(normed, 0), s.Logits);
    }

    /// <summary>One layer's attention for the token at position length − 1, as the policy's schedule says.</summary>
    private static void Attend(IBackend b, DecodeState s, AttentionPolicy policy, int layer, ITensor q, int length, ITensor output, LlamaConfig c)
    {
        switch (policy.Schedule[layer])
        {
            case LayerAttention.Dense:
                b.Attention(q, s.Keys[layer], s.Values[layer], length, output);
                break;
            case LayerAttention.DenseSelect:
                b.Attention(q, s.Keys[layer], s.Values[layer], length, output, s.AttentionLogits);
                policy.LogitsObserver?.Invoke(layer, s.AttentionLogits, length);
                b.SelectTopK(s.AttentionLogits, length, policy.TokenBudget, policy.Forced, SelectedView(s, policy, length, c));
                break;
            case LayerAttention.Reuse:
                b.SparseAttention(q, s.Keys[layer], s.Values[layer], length, SelectedView(s, policy, length, c), output);
                break;
            case LayerAttention.Pages:
                int count = Quest.SelectedTokenCount(length, policy.PageBudget);
                ITensor tokens = s.Selected.Slice(0, c.Heads * count).Reshape(new Shape(c.Heads, count));
                b.SelectPages(q, s.PageMin[layer], s.PageMax[layer], length, policy.PageBudget, tokens);
                b.SparseAttention(q, s.Keys[layer], s.Values[layer], length, tokens, output);
                break;
        }
    }

    /// <summary>
    /// input [n, cols] · weightᵀ for a weight that stacks several projections (fused QKV, gate/up), each projection's
    /// outputs into its own region ([n, rows of that projection], one after another in <paramref name="all"/>). One
    /// token's fused output row is exactly those regions in sequence, so a decode step fills them with one matmul; a
    /// chunk takes one matmul per projection (the same dot products, so the same bits).
    /// </summary>
    private static void Project(IBackend b, ITensor weight, ITensor input, ITensor all, params ReadOnlySpan<ITensor> parts)
    {
        int n = input.Shape[0];
        if (n == 1) { b.MatMul(weight, input, all); return; }
        int row = 0;
        foreach (ITensor part in parts)
        {
            int rows = (int)(part.Shape.ElementCount / n);
            b.MatMul(weight.Slice(row, rows), input, part);
            row += rows;
        }
    }

    /// <summary>The selected set as [groups, min(budget, length)].</summary>
    private static ITensor SelectedView(DecodeState s, AttentionPolicy policy, int length, LlamaConfig c)
    {
        int groups = policy.Scope switch { SelectionScope.QueryHead => c.Heads, SelectionScope.KvHead => c.KvHeads, _ => 1 };
        int k = Math.Min(policy.TokenBudget, length);
        return s.Selected.Slice(0, groups * k).Reshape(new Shape(groups, k));
    }

    private static ITensor Row(ITensor t, int r) => t.Slice(r, 1).Reshape(t.Shape.Inner);
}
