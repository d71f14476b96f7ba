using Tidal.Models.Tokenization;

namespace Tidal.Models.Tests;

public class TokenizerTests
{
    [TinyModelFact]
    public void EncodesEveryGoldenPrompt_ToItsGoldenIds_AndDecodesBack()
    {
        var tokenizer = Tokenizer.FromFile(TinyModel.Path_("tokenizer.json"));
        foreach (var prompt in TinyModel.Golden())
        {
            Assert.Equal(prompt.Ids, tokenizer.Encode(prompt.Text));
            Assert.Equal(prompt.Text, tokenizer.Decode(prompt.Ids, skipSpecialTokens: true));
        }
    }

    [TinyModelFact]
    public void DigitsAreSingleTokens_AndSpecialTokensAreRecognisedInText()
    {
        var tokenizer = Tokenizer.FromFile(TinyModel.Path_("tokenizer.json"));
        Assert.Equal([223, 22, 26, 20, 19, 21, 16], tokenizer.Encode(" 48213.", addSpecialTokens: false));
        int[] ids = tokenizer.Encode("a<|end_of_text|>b", addSpecialTokens: false);
        Assert.Contains(1, ids);
        Assert.True(tokenizer.IsSpecial(1));
    }
}
