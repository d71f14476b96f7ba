namespace Tidal.Models.Engine;

/// <summary>
/// Releases streamed text while holding back any tail that could still grow into a stop string, and reports when
/// a stop string appears (its text is never released).
/// </summary>
internal sealed class StopStringFilter(IReadOnlyList<string> stops)
{
    private string _pending = "";

    public (string Released, bool Stop) Push(string piece)
    {
        _pending += piece;
        foreach (string stop in stops)
        {
            int at = _pending.IndexOf(stop, StringComparison.Ordinal);
            if (at >= 0)
            {
                string released = _pending.Substring(0, at);
                _pending = "";
                return (released, true);
            }
        }
        int hold = 0;
        foreach (string stop in stops)
            for (int len = Math.Min(stop.Length - 1, _pending.Length); len > hold; len--)
                if (_pending.AsSpan(_pending.Length - len).SequenceEqual(stop.AsSpan(0, len))) { hold = len; break; }
        string release = _pending.Substring(0, _pending.Length - hold);
        _pending = _pending.Substring(_pending.Length - hold);
        return (release, false);
    }

    public string Flush()
    {
        string rest = _pending;
        _pending = "";
        return rest;
    }
}
