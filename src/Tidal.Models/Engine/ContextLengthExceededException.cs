namespace Tidal.Models.Engine;

/// <summary>A prompt or generation would run past the context length a session was created with.</summary>
public sealed class ContextLengthExceededException : InvalidOperationException
{
    /// <summary>Creates the exception; the message states both lengths.</summary>
    public ContextLengthExceededException(int needed, int capacity)
        : base($"the sequence needs {needed} positions but the session was created for a context of {capacity}; create it with a larger maxContext.")
    {
        Needed = needed;
        Capacity = capacity;
    }

    /// <summary>Positions the sequence would need.</summary>
    public int Needed { get; }

    /// <summary>Positions the session holds.</summary>
    public int Capacity { get; }
}
