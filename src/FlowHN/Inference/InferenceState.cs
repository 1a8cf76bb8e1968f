namespace FlowHN.Inference;

/// <summary>
/// The decoding state of one sequence: every layer's cache (attention keys and values, Mamba conv and scan
/// states) and how many tokens the model has seen. A prefill fills it from the prompt in one forward; each
/// decode step then adds one token. Tensors live outside step scopes and go back on <see cref="Dispose"/>.
/// </summary>
public sealed class InferenceState : IDisposable
{
    public InferenceState(IReadOnlyList<ILayerCache> layers)
    {
        Layers = layers;
    }

    /// <summary>One cache per decoder layer (FlowHN: per block), in layer order.</summary>
    public IReadOnlyList<ILayerCache> Layers { get; }

    /// <summary>Tokens seen so far; the next token's absolute position.</summary>
    public int Position { get; private set; }

    /// <summary>Moves the position on after a forward of <paramref name="tokens"/> tokens.</summary>
    public void Advance(int tokens) => Position += tokens;

    public void Dispose()
    {
        foreach (var layer in Layers) layer.Dispose();
    }
}
