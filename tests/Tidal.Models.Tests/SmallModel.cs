using Tidal.Models.Config;

namespace Tidal.Models.Tests;

/// <summary>A small Llama shape with GQA for random-weight tests (no files needed).</summary>
internal static class SmallModel
{
    public static LlamaConfig Config(int layers) => new()
    {
        VocabSize = 97, HiddenSize = 64, IntermediateSize = 96, Layers = layers, Heads = 4, KvHeads = 2, HeadDim = 16,
        RopeTheta = 10000f, MaxPositions = 256, BosTokenId = 0, EosTokenIds = [1],
    };
}
