namespace FlowHN.Nn;

/// <summary>Timing marks around the parts of a mixer, such as Hymba's attention and SSM heads (bench --breakdown).</summary>
public interface IPartTimer
{
    /// <summary>Marks the start of an attention part or an SSM part; returns the handle for <see cref="EndPart"/>.</summary>
    int BeginPart(bool attention);

    void EndPart(int part);
}
