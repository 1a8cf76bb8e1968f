using System.Globalization;
using System.Text.Json;
using System.Text.Json.Serialization;
using FlowHN.Runtime;

namespace FlowHN.Models;

/// <summary>
/// How many of a sequence's tokens FlowHN's fa and fac splits give to attention (<c>--split-ratio</c>): balance
/// the FLOP model (<see cref="FlopBalanced"/>, <c>flops</c>), balance branch times measured on the device
/// (<see cref="Measured"/>, <c>time</c>; resolved to a <see cref="Fixed"/> share by <see cref="SplitTimer"/>
/// before a model is built) or a fixed share in (0, 1) (<see cref="Fixed"/>, e.g. <c>0.59</c>, the paper's code).
/// A closed set: the three cases below are the only ones. Saved in config.json as the word the user types.
/// </summary>
[JsonConverter(typeof(AttentionShareJsonConverter))]
public abstract record AttentionShare
{
    private AttentionShare() { }

    /// <summary>The words <see cref="Parse"/> accepts, for option descriptions and errors.</summary>
    public const string Words = "flops, time or a number between 0 and 1";

    public static AttentionShare Flops { get; } = new FlopBalanced();
    public static AttentionShare Time { get; } = new Measured();

    /// <summary>Solve the FLOP model for the share that costs both branches the same (<c>flops</c>).</summary>
    public sealed record FlopBalanced : AttentionShare
    {
        public override string ToString() => "flops";
    }

    /// <summary>Time both branches on this device and take the share where the times cross (<c>time</c>).</summary>
    public sealed record Measured : AttentionShare
    {
        public override string ToString() => "time";
    }

    /// <summary>A given attention share, strictly between 0 and 1.</summary>
    public sealed record Fixed : AttentionShare
    {
        public Fixed(double value)
        {
            if (!double.IsFinite(value) || value <= 0 || value >= 1)
                throw new UserException($"The split ratio must lie strictly between 0 and 1, got {value.ToString("R", CultureInfo.InvariantCulture)}.");
            Value = value;
        }

        public double Value { get; }

        public override string ToString() => Value.ToString("R", CultureInfo.InvariantCulture);
    }

    /// <summary>Parses <c>flops</c>, <c>time</c> or a number in (0, 1); null when <paramref name="text"/> is none of them.</summary>
    public static AttentionShare? TryParse(string text) => text switch
    {
        "flops" => Flops,
        "time" => Time,
        _ => double.TryParse(text, NumberStyles.Float, CultureInfo.InvariantCulture, out double share) && share > 0 && share < 1
            ? new Fixed(share)
            : null,
    };

    /// <summary>As <see cref="TryParse"/>; anything else is a user error naming the valid words.</summary>
    public static AttentionShare Parse(string text) =>
        TryParse(text) ?? throw new UserException($"Unknown split ratio '{text}'; use {Words}.");

    /// <summary>A measured share, kept to four decimals (as saved and printed, so a resumed run splits the same way).</summary>
    public static Fixed Rounded(double share) =>
        (Fixed)Parse(share.ToString("0.####", CultureInfo.InvariantCulture));
}

/// <summary>Writes an <see cref="AttentionShare"/> as its word (<c>"flops"</c>, <c>"time"</c>, <c>"0.59"</c>) and reads it back.</summary>
public sealed class AttentionShareJsonConverter : JsonConverter<AttentionShare>
{
    public override AttentionShare Read(ref Utf8JsonReader reader, Type typeToConvert, JsonSerializerOptions options)
    {
        string text = reader.TokenType == JsonTokenType.String
            ? reader.GetString()!
            : throw new JsonException($"A split ratio is a string ({AttentionShare.Words}), not {reader.TokenType}.");
        return AttentionShare.TryParse(text) ?? throw new JsonException($"Unknown split ratio '{text}'; use {AttentionShare.Words}.");
    }

    public override void Write(Utf8JsonWriter writer, AttentionShare value, JsonSerializerOptions options) =>
        writer.WriteStringValue(value.ToString());
}
