using System.Runtime.CompilerServices;
using Tidal.Core;
using Tidal.Core.Reference;
using Tidal.Models.Tokenization;

namespace Tidal.Models.Engine;

/// <summary>
/// One sequence being decoded: its KV cache and position. Prompts continue the sequence. A cancelled generation
/// stops between steps and leaves the session usable.
/// </summary>
public sealed class Session : IDisposable
{
    private readonly LlamaModel _model;
    private readonly DecodeState _state;
    private readonly List<int> _tokens = [];
    private readonly float[] _logits;
    private bool _logitsOnHost;
    private int _correctedUpTo;
    private int? _unfed; // the last generated token, fed at the start of the next prompt

    internal Session(LlamaModel model, int maxContext, DType cacheType)
    {
        _model = model;
        _state = new DecodeState(model.Config, model.Weights.Backend, maxContext, cacheType);
        _logits = new float[model.Config.VocabSize];
    }

    /// <summary>Tokens fed so far (prompt and generated).</summary>
    public IReadOnlyList<int> Tokens => _tokens;

    /// <summary>Positions this session holds.</summary>
    public int MaxContext => _state.Capacity;

    /// <summary>Logits after the last token fed (copied from the backend on first access after each step).</summary>
    public ReadOnlySpan<float> Logits
    {
        get
        {
            if (!_logitsOnHost) _model.Weights.Backend.Download<float>(_state.Logits, _logits);
            _logitsOnHost = true;
            return _logits;
        }
    }

    /// <summary>Feeds tokens densely (prefill, in chunks) and computes the last one's logits.</summary>
    /// <exception cref="ContextLengthExceededException">The tokens do not fit the session's context.</exception>
    public void Prefill(ReadOnlySpan<int> tokens)
    {
        Decoder.Forward(_model.Weights, _state, tokens, AttentionPolicy.Full(_model.Config.Layers), computeLogits: true);
        foreach (int t in tokens) _tokens.Add(t);
        _correctedUpTo = _tokens.Count;
        _logitsOnHost = false;
    }

    /// <summary>
    /// Forgets every token after the first <paramref name="length"/>, so the session continues from there: several
    /// continuations of one prefilled prompt without prefilling it again. The tokens of the last (partial) Quest page
    /// kept are fed again densely, because that page's key bounds still hold the forgotten keys; this also leaves the
    /// logits after token <paramref name="length"/> − 1 ready. A prompt prefilled and rewound is bit for bit a prompt
    /// prefilled.
    /// </summary>
    /// <exception cref="ArgumentOutOfRangeException">length is not in [1, <see cref="Tokens"/>.Count].</exception>
    public void Rewind(int length)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(length);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(length, _tokens.Count);
        int keep = (length - 1) / Quest.PageSize * Quest.PageSize;
        int[] again = _tokens.GetRange(keep, length - keep).ToArray();
        int corrected = _correctedUpTo;
        _tokens.RemoveRange(keep, _tokens.Count - keep);
        _state.Length = keep;
        _unfed = null;
        Prefill(again);
        if (corrected < keep) _correctedUpTo = corrected; // positions decoded sparsely before the kept page stay due for correction
    }

    /// <summary>
    /// For decode benchmarks on random weights: stands in for a prefill of <paramref name="length"/> tokens by filling
    /// those positions of every layer's KV cache with random keys and values (Quest's page bounds to match) without
    /// running the model. The tokens read as 0 and the logits as all zero until the first <see cref="Step"/>.
    /// </summary>
    /// <exception cref="InvalidOperationException">The session is not empty.</exception>
    /// <exception cref="ContextLengthExceededException">The length does not fit the session's context.</exception>
    public void FillRandomContext(int length, ulong seed)
    {
        if (_tokens.Count > 0) throw new InvalidOperationException("a random context fills an empty session only.");
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(length);
        if (length > _state.Capacity) throw new ContextLengthExceededException(length, _state.Capacity);
        RandomContext.Fill(_state, _model.Weights.Backend, length, seed);
        _model.Weights.Backend.Upload<float>(new float[_model.Config.VocabSize], _state.Logits);
        _state.Length = length;
        _tokens.AddRange(new int[length]);
        _correctedUpTo = length;
        _logitsOnHost = false;
    }

    /// <summary>
    /// Feeds one token as a decode step under <paramref name="policy"/> and computes its logits. With cache correction
    /// on, every <see cref="AttentionPolicy.CorrectionInterval"/> steps the K/V of the tokens decoded since the last
    /// correction are recomputed densely.
    /// </summary>
    public void Step(int token, AttentionPolicy policy)
    {
        policy.Validate(_model.Config.Layers);
        Decoder.Forward(_model.Weights, _state, [token], policy, computeLogits: true);
        _tokens.Add(token);
        _logitsOnHost = false;
        if (policy.CorrectionInterval > 0 && _tokens.Count - _correctedUpTo >= policy.CorrectionInterval) CorrectCache();
    }

    /// <summary>
    /// Draws the next token from the last logits where they live (<see cref="Tidal.Core.Reference.Sampling.Sample"/>:
    /// temperature 0 is greedy), so only one int crosses to the host. The draw depends on (seed, position) only.
    /// </summary>
    public int Sample(float temperature = 0f, float topP = 1f, ulong seed = 0) =>
        _model.Weights.Backend.Sample(_state.Logits, temperature, topP, seed, _tokens.Count);

    /// <summary>Recomputes, with dense attention, the K/V of every position decoded sparsely since the last correction.</summary>
    public void CorrectCache()
    {
        int end = _state.Length;
        _state.Length = _correctedUpTo;
        Decoder.Forward(_model.Weights, _state, System.Runtime.InteropServices.CollectionsMarshal.AsSpan(_tokens).Slice(_correctedUpTo, end - _correctedUpTo),
            AttentionPolicy.Full(_model.Config.Layers), computeLogits: false);
        _correctedUpTo = end;
    }

    /// <summary>
    /// Tokenizes <paramref name="prompt"/> (with BOS when the session is empty), prefills it, then generates and
    /// streams tokens with their text until a stop condition.
    /// </summary>
    public async IAsyncEnumerable<GeneratedToken> GenerateAsync(string prompt, GenerationOptions options, [EnumeratorCancellation] CancellationToken cancellationToken = default)
    {
        options.Validate();
        AttentionPolicy policy = options.Policy ?? AttentionPolicy.Full(_model.Config.Layers);
        policy.Validate(_model.Config.Layers);
        Tokenizer tokenizer = _model.Tokenizer ?? throw new InvalidOperationException("the model has no tokenizer; feed token ids with Prefill and Step.");
        int[] ids = tokenizer.Encode(prompt, addSpecialTokens: _tokens.Count == 0 && _unfed is null);
        if (_unfed is int carried) ids = [carried, .. ids];
        _unfed = null;
        if (_tokens.Count + ids.Length + options.MaxNewTokens > MaxContext)
            throw new ContextLengthExceededException(_tokens.Count + ids.Length + options.MaxNewTokens, MaxContext);
        cancellationToken.ThrowIfCancellationRequested();
        await Task.Yield();
        Prefill(ids);
        // Sampling runs where the logits are (Sampling.Sample): one int crosses to the host per token.
        ulong seed = options.Seed is int s ? (ulong)s : (ulong)Random.Shared.NextInt64();
        var text = new Utf8StreamDecoder();
        var stops = new StopStringFilter(options.StopStrings);
        bool stopped = false;
        for (int i = 0; i < options.MaxNewTokens && !stopped; i++)
        {
            cancellationToken.ThrowIfCancellationRequested();
            int next = Sample(options.Temperature, options.TopP, seed);
            _unfed = next;
            if (options.StopAtEndOfSequence && _model.Config.EosTokenIds.Contains(next)) break;
            string piece = tokenizer.IsSpecial(next) ? "" : text.Push(tokenizer.TokenBytes(next));
            (string released, stopped) = stops.Push(piece);
            yield return new GeneratedToken(next, released);
            if (!stopped && i + 1 < options.MaxNewTokens)
            {
                Step(next, policy);
                _unfed = null;
            }
            await Task.Yield();
        }
        if (!stopped)
        {
            string rest = stops.Push(text.Flush()).Released + stops.Flush();
            if (rest.Length > 0) yield return new GeneratedToken(-1, rest);
        }
    }

    /// <summary>Frees the KV cache and scratch buffers.</summary>
    public void Dispose() => _state.Dispose();
}
