using FsCheck;
using FsCheck.Fluent;
using FsCheck.Xunit;
using Tidal.Core;
using Tidal.Core.Backends;
using Tidal.Core.Reference;
using Tidal.Models.Config;
using Tidal.Models.Engine;

namespace Tidal.Models.Tests;

/// <summary>Attention policies in the engine, on a small random-weight model (no files needed).</summary>
public class PolicyTests
{
    private static readonly LlamaConfig Small = SmallModel.Config(layers: 7);

    private static readonly Lazy<LlamaModel> Model = new(() => LlamaModel.FromWeights(ModelWeights.Random(Small, new CpuBackend(), DType.BF16, seed: 7)));

    private static int[] Tokens(int seed, int n) => Enumerable.Range(0, n).Select(_ => 0).Select((_, i) => new Random(seed + i).Next(2, Small.VocabSize)).ToArray();

    private static float[] Run(int[] tokens, int prefill, AttentionPolicy policy)
    {
        using Session s = Model.Value.CreateSession(128);
        s.Prefill(tokens.AsSpan(0, prefill));
        for (int i = prefill; i < tokens.Length; i++) s.Step(tokens[i], policy);
        return s.Logits.ToArray();
    }

    public static IEnumerable<object[]> CoveringPolicies()
    {
        int L = Small.Layers;
        yield return [AttentionPolicy.Full(L)];
        yield return [AttentionPolicy.TidalDecode(L, 128)];
        yield return [AttentionPolicy.TidalDecode(L, 128, scope: SelectionScope.KvHead)];
        yield return [AttentionPolicy.TidalDecode(L, 128, scope: SelectionScope.AllHeads, forced: new ForcedTokens(2, 4))];
        yield return [AttentionPolicy.Quest(L, 128)];
    }

    [Theory]
    [MemberData(nameof(CoveringPolicies))]
    public void AnyPolicyWhoseBudgetCoversTheContext_EqualsDensePrefill_Bitwise(AttentionPolicy policy)
    {
        int[] tokens = Tokens(1, 40);
        float[] dense = Run(tokens, tokens.Length, policy);
        float[] stepped = Run(tokens, 9, policy);
        Assert.Equal(dense, stepped);
    }

    /// <summary>
    /// An independent orchestration of TidalDecode with the reference ops on plain arrays: layers 0–1 dense, layers 2
    /// and r dense + per-head top-k, other layers sparse over the last selection.
    /// </summary>
    private static float[] OracleTidal(int[] tokens, int prefill, int budget, int r)
    {
        LlamaConfig c = Small;
        int d = c.HeadDim, cap = 128, qd = c.Heads * d, kvd = c.KvHeads * d;
        var src = new Tidal.Models.Loading.RandomTensorSource(c, DType.BF16, 7);
        BFloat16[] W(string name, params int[] dims) => src.Get(name, new Tidal.Core.Tensors.Shape(dims)).AsReadOnlySpan<BFloat16>().ToArray();
        var keys = new float[c.Layers][];
        var values = new float[c.Layers][];
        for (int l = 0; l < c.Layers; l++) { keys[l] = new float[c.KvHeads * cap * d]; values[l] = new float[keys[l].Length]; }
        var rope = new RopeTable(d, c.RopeTheta, cap);
        float[] logits = [];
        int[] selected = [];
        for (int pos = 0; pos < tokens.Length; pos++)
        {
            bool sparseStep = pos >= prefill;
            var x = new float[c.HiddenSize];
            Elementwise.Embed<BFloat16>(W("model.embed_tokens.weight", c.VocabSize, c.HiddenSize), tokens[pos], x);
            for (int l = 0; l < c.Layers; l++)
            {
                string p = $"model.layers.{l}.";
                var h = new float[c.HiddenSize];
                RmsNorm.Apply<BFloat16>(x, W(p + "input_layernorm.weight", c.HiddenSize), c.RmsNormEps, h);
                var q = new float[qd]; var k = new float[kvd]; var v = new float[kvd];
                Linear.MatVec<BFloat16>(W(p + "self_attn.q_proj.weight", qd, c.HiddenSize), h, q);
                Linear.MatVec<BFloat16>(W(p + "self_attn.k_proj.weight", kvd, c.HiddenSize), h, k);
                Linear.MatVec<BFloat16>(W(p + "self_attn.v_proj.weight", kvd, c.HiddenSize), h, v);
                rope.Apply(q, pos, RopeLayout.HalfSplit);
                rope.Apply(k, pos, RopeLayout.HalfSplit);
                for (int kh = 0; kh < c.KvHeads; kh++)
                {
                    k.AsSpan(kh * d, d).CopyTo(keys[l].AsSpan((kh * cap + pos) * d));
                    v.AsSpan(kh * d, d).CopyTo(values[l].AsSpan((kh * cap + pos) * d));
                }
                var kv = new KvView<float>(keys[l], values[l], c.KvHeads, cap, d, pos + 1);
                var o = new float[qd];
                bool select = l == 2 || l == r;
                if (!sparseStep || l < 2 || select)
                {
                    var lg = new float[c.Heads * (pos + 1)];
                    Attention.Dense(q, kv, o, lg);
                    if (sparseStep && select)
                    {
                        int kk = Math.Min(budget, pos + 1);
                        selected = new int[c.Heads * kk];
                        TopK.SelectPerQueryHead(lg, c.Heads, budget, selected);
                    }
                }
                else Attention.SparsePerQueryHead(q, kv, selected, selected.Length / c.Heads, o);
                var proj = new float[c.HiddenSize];
                Linear.MatVec<BFloat16>(W(p + "self_attn.o_proj.weight", c.HiddenSize, qd), o, proj);
                Elementwise.AddInPlace(x, proj);
                RmsNorm.Apply<BFloat16>(x, W(p + "post_attention_layernorm.weight", c.HiddenSize), c.RmsNormEps, h);
                var gate = new float[c.IntermediateSize]; var up = new float[c.IntermediateSize]; var act = new float[c.IntermediateSize];
                Linear.MatVec<BFloat16>(W(p + "mlp.gate_proj.weight", c.IntermediateSize, c.HiddenSize), h, gate);
                Linear.MatVec<BFloat16>(W(p + "mlp.up_proj.weight", c.IntermediateSize, c.HiddenSize), h, up);
                Elementwise.SwiGlu(gate, up, act);
                Linear.MatVec<BFloat16>(W(p + "mlp.down_proj.weight", c.HiddenSize, c.IntermediateSize), act, proj);
                Elementwise.AddInPlace(x, proj);
            }
            var n = new float[c.HiddenSize];
            RmsNorm.Apply<BFloat16>(x, W("model.norm.weight", c.HiddenSize), c.RmsNormEps, n);
            logits = new float[c.VocabSize];
            Linear.MatVec<BFloat16>(W("lm_head.weight", c.VocabSize, c.HiddenSize), n, logits);
        }
        src.Dispose();
        return logits;
    }

    [Property(MaxTest = 6)]
    public Property TidalDecode_WithASmallBudget_MatchesAnIndependentReferenceOrchestration() =>
        Prop.ForAll(Gen.Choose(3, 20).ToArbitrary(), Gen.Choose(3, 6).ToArbitrary(), Gen.Choose(0, 1000).ToArbitrary(), (budget, r, seed) =>
        {
            int[] tokens = Tokens(seed, 30);
            float[] engine = Run(tokens, 12, AttentionPolicy.TidalDecode(Small.Layers, budget, r));
            Assert.Equal(OracleTidal(tokens, 12, budget, r), engine);
            Assert.NotEqual(Run(tokens, tokens.Length, AttentionPolicy.Full(Small.Layers)), engine); // sparse really is sparse
        });

    /// <summary>
    /// A session prefilled with A + B and rewound to |A| continues exactly like one prefilled with A alone: the same
    /// logits after A, after prefilling C, and after Quest steps (whose page bounds must not remember B's keys).
    /// </summary>
    [Property(MaxTest = 12)]
    public Property Rewind_ContinuesBitForBitLikeAFreshPrefill() =>
        Prop.ForAll(Gen.Choose(1, 40).ToArbitrary(), Gen.Choose(1, 20).ToArbitrary(), Gen.Choose(0, 1000).ToArbitrary(), (a, b, seed) =>
        {
            // The steps run past the rewound page, so that its bounds are scored as those of an ordinary page.
            int[] tokens = Tokens(seed, a + b + 4 + 40);
            int[] prefixA = tokens[..a], suffixB = tokens[a..(a + b)], suffixC = tokens[(a + b)..(a + b + 4)], steps = tokens[(a + b + 4)..];
            var quest = AttentionPolicy.Quest(Small.Layers, 32);
            using Session fresh = Model.Value.CreateSession(128), rewound = Model.Value.CreateSession(128);
            fresh.Prefill(prefixA);
            rewound.Prefill([.. prefixA, .. suffixB]);
            rewound.Step(steps[0], quest); // sparse steps before the rewind are forgotten too
            rewound.Rewind(a);
            Assert.Equal(fresh.Logits.ToArray(), rewound.Logits.ToArray());
            Assert.Equal(prefixA, rewound.Tokens);
            fresh.Prefill(suffixC);
            rewound.Prefill(suffixC);
            foreach (int token in steps)
            {
                fresh.Step(token, quest);
                rewound.Step(token, quest);
                Assert.Equal(fresh.Logits.ToArray(), rewound.Logits.ToArray());
            }
        });

    [Fact]
    public void Coherence_PerHeadOverlapIsAShareMatrix_AndTheMeanIsTheirAverage()
    {
        int[] tokens = Tokens(11, 48);
        var report = Tidal.Models.Evaluation.Coherence.Measure(Model.Value, tokens, 44, budget: 8);
        int heads = Small.Heads, layers = Small.Layers;
        Assert.Equal((heads, layers, layers), (report.HeadOverlap.GetLength(0), report.HeadOverlap.GetLength(1), report.HeadOverlap.GetLength(2)));
        bool anyPartial = false;
        for (int a = 0; a < layers; a++)
            for (int b = 0; b < layers; b++)
            {
                double sum = 0;
                for (int h = 0; h < heads; h++)
                {
                    double share = report.HeadOverlap[h, a, b];
                    Assert.InRange(share, 0, 1);
                    Assert.Equal(share, report.HeadOverlap[h, b, a], 12); // sets of one size k: |A ∩ B| / k is symmetric
                    if (a == b) Assert.Equal(1, share);
                    anyPartial |= share < 1;
                    sum += share;
                }
                Assert.Equal(sum / heads, report.Overlap[a, b], 12);
            }
        Assert.True(anyPartial, "random layers do not all pick the same tokens");
        Assert.InRange(report.RecommendedLayer, Tidal.Models.Evaluation.CoherenceReport.FirstCandidate, layers - 1);
    }

    [Fact]
    public void CacheCorrection_LeavesTheCacheAsADensePrefillWouldHaveIt()
    {
        int[] tokens = Tokens(3, 31);
        var tidal = AttentionPolicy.TidalDecode(Small.Layers, 4, correctionInterval: 5);
        var full = AttentionPolicy.Full(Small.Layers);
        using Session corrected = Model.Value.CreateSession(64), dense = Model.Value.CreateSession(64), uncorrected = Model.Value.CreateSession(64);
        corrected.Prefill(tokens.AsSpan(0, 10));
        uncorrected.Prefill(tokens.AsSpan(0, 10));
        for (int i = 10; i < 30; i++)
        {
            corrected.Step(tokens[i], tidal); // corrections after 5, 10, 15 and 20 sparse steps: positions 10..29
            uncorrected.Step(tokens[i], tidal with { CorrectionInterval = 0 });
        }
        dense.Prefill(tokens.AsSpan(0, 30));
        corrected.Step(tokens[30], full);
        dense.Step(tokens[30], full);
        uncorrected.Step(tokens[30], full);
        Assert.Equal(dense.Logits.ToArray(), corrected.Logits.ToArray());
        Assert.NotEqual(dense.Logits.ToArray(), uncorrected.Logits.ToArray());
    }

    [Fact]
    public void InvalidPolicies_AreRejectedWithTheReason()
    {
        Assert.Equal("reselectLayer", Assert.Throws<ArgumentException>(() => AttentionPolicy.TidalDecode(12, 64, reselectLayer: 2)).ParamName);
        Assert.Equal("budget", Assert.Throws<ArgumentException>(() => AttentionPolicy.TidalDecode(12, 0)).ParamName);
        var reuseFirst = new AttentionPolicy { Name = "bad", Schedule = [LayerAttention.Reuse, .. Enumerable.Repeat(LayerAttention.Dense, Small.Layers - 1)] };
        using Session s = Model.Value.CreateSession(16);
        s.Prefill([5]);
        Assert.Contains("no earlier layer selects", Assert.Throws<ArgumentException>(() => s.Step(6, reuseFirst)).Message);
        Assert.Throws<ArgumentException>(() => s.Step(6, AttentionPolicy.Full(3)));
        Assert.Equal(5, AttentionPolicy.DefaultReselectLayer(12));
        Assert.Equal(13, AttentionPolicy.DefaultReselectLayer(32));
    }

    [Fact]
    public void ContextOverflow_IsAClearError_NotAWrap()
    {
        using Session s = Model.Value.CreateSession(8);
        s.Prefill([2, 3, 4, 5, 6, 7, 8]);
        s.Step(9, AttentionPolicy.Full(Small.Layers));
        var e = Assert.Throws<ContextLengthExceededException>(() => s.Step(10, AttentionPolicy.Full(Small.Layers)));
        Assert.Equal(9, e.Needed);
        Assert.Equal(8, e.Capacity);
        Assert.Throws<ArgumentException>(() => Model.Value.CreateSession(Small.MaxPositions + 1));
    }
}
