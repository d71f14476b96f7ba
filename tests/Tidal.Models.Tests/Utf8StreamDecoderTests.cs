using System.Text;
using FsCheck;
using FsCheck.Fluent;
using FsCheck.Xunit;
using Tidal.Models.Tokenization;

namespace Tidal.Models.Tests;

public class Utf8StreamDecoderTests
{
    [Property(MaxTest = 200)]
    public Property AnySplitOfTheBytes_NeverEmitsABrokenCharacter_AndReassemblesTheText() =>
        Prop.ForAll(Gen.Choose(0, int.MaxValue - 1).ToArbitrary(), seed =>
        {
            var random = new Random(seed);
            string[] alphabet = ["a", "é", "€", "𝄞", "中", " ", "\n"];
            string text = string.Concat(Enumerable.Range(0, random.Next(1, 30)).Select(_ => alphabet[random.Next(alphabet.Length)]));
            byte[] bytes = Encoding.UTF8.GetBytes(text);
            var decoder = new Utf8StreamDecoder();
            var output = new StringBuilder();
            for (int i = 0; i < bytes.Length;)
            {
                int n = Math.Min(random.Next(1, 4), bytes.Length - i);
                string piece = decoder.Push(bytes.AsSpan(i, n));
                Assert.DoesNotContain('\uFFFD', piece);
                Assert.False(piece.Length > 0 && char.IsHighSurrogate(piece[^1]), "a surrogate pair was split");
                output.Append(piece);
                i += n;
            }
            output.Append(decoder.Flush());
            Assert.Equal(text, output.ToString());
        });
}
