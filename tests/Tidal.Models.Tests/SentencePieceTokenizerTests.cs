using System.Text.Json;
using Tidal.Models.Loading;
using Tidal.Models.Tokenization;

namespace Tidal.Models.Tests;

/// <summary>A Llama-2-style tokenizer.json (SentencePiece BPE: '▁' for spaces, byte fallback) built in the test.</summary>
public sealed class SentencePieceTokenizerTests : IDisposable
{
    private readonly string _path = Path.GetTempFileName();

    public SentencePieceTokenizerTests()
    {
        var vocab = new Dictionary<string, int> { ["<unk>"] = 0, ["<s>"] = 1, ["</s>"] = 2 };
        for (int b = 0; b < 256; b++) vocab[$"<0x{b:X2}>"] = 3 + b;
        foreach (string t in new[] { "▁", "h", "e", "l", "o", "w", "r", "d", "▁h", "▁he", "ll", "▁hell", "▁hello", "▁w", "or", "▁wor", "ld", "▁world" })
            vocab[t] = vocab.Count;
        var json = new
        {
            added_tokens = new object[]
            {
                new { id = 0, content = "<unk>", special = true }, new { id = 1, content = "<s>", special = true }, new { id = 2, content = "</s>", special = true },
            },
            normalizer = new { type = "Sequence", normalizers = new object[] { new { type = "Prepend", prepend = "▁" }, new { type = "Replace", pattern = new { String = " " }, content = "▁" } } },
            pre_tokenizer = (object?)null,
            post_processor = new
            {
                type = "TemplateProcessing",
                single = new object[] { new { SpecialToken = new { id = "<s>", type_id = 0 } }, new { Sequence = new { id = "A", type_id = 0 } } },
                special_tokens = new Dictionary<string, object> { ["<s>"] = new { id = "<s>", ids = new[] { 1 }, tokens = new[] { "<s>" } } },
            },
            decoder = new { type = "Sequence", decoders = new object[] { new { type = "Replace", pattern = new { String = "▁" }, content = " " }, new { type = "ByteFallback" }, new { type = "Fuse" }, new { type = "Strip", content = " ", start = 1, stop = 0 } } },
            model = new
            {
                type = "BPE", byte_fallback = true, unk_token = "<unk>",
                vocab,
                merges = new[] { "▁ h", "▁h e", "l l", "▁he ll", "▁hell o", "▁ w", "o r", "▁w or", "l d", "▁wor ld" },
            },
        };
        File.WriteAllText(_path, JsonSerializer.Serialize(json));
    }

    [Fact]
    public void Encodes_WithMetaspaceMerges_ByteFallback_AndBos()
    {
        var tokenizer = Tokenizer.FromFile(_path);
        int Id(string t) => Enumerable.Range(0, tokenizer.VocabSize).First(i => tokenizer.TokenString(i) == t);
        int[] ids = tokenizer.Encode("hello world€");
        Assert.Equal([1, Id("▁hello"), Id("▁world"), Id("<0xE2>"), Id("<0x82>"), Id("<0xAC>")], ids);
        Assert.Equal("hello world€", tokenizer.Decode(ids, skipSpecialTokens: true));
        // Streaming: the euro sign's three byte tokens produce no text until the last one.
        var stream = new Utf8StreamDecoder();
        Assert.Equal("", stream.Push(tokenizer.TokenBytes(Id("<0xE2>"))));
        Assert.Equal("", stream.Push(tokenizer.TokenBytes(Id("<0x82>"))));
        Assert.Equal("€", stream.Push(tokenizer.TokenBytes(Id("<0xAC>"))));
    }

    [Fact]
    public void UnsupportedComponents_AreReportedByName()
    {
        File.WriteAllText(_path, """{"model":{"type":"Unigram","vocab":[]}}""");
        Assert.Contains("Unigram", Assert.Throws<ModelFormatException>(() => Tokenizer.FromFile(_path)).Message);
        File.WriteAllText(_path, "{ not json");
        Assert.Throws<ModelFormatException>(() => Tokenizer.FromFile(_path));
    }

    public void Dispose() => File.Delete(_path);
}
