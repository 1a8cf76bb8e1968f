using ScottPlot;
using SkiaSharp;

namespace FlowHN.Reports;

/// <summary>
/// What every chart shares: the embedded font, the size and the colours, and saving as PNG or SVG.
/// </summary>
public static class ChartStyle
{
    public const int Width = 900;
    public const int Height = 540;

    /// <summary>The family name under which the embedded font is registered.</summary>
    public const string FontName = "Inter";

    private static readonly object FontLock = new();
    private static bool fontRegistered;

    /// <summary>Run i's colour (Category10, as matplotlib and TensorBoard use).</summary>
    public static Color SeriesColor(int index) => new ScottPlot.Palettes.Category10().GetColor(index);

    /// <summary>A plot with the embedded font on every label.</summary>
    public static Plot NewPlot()
    {
        RegisterFont();
        var plot = new Plot();
        plot.Font.Set(FontName);
        return plot;
    }

    /// <summary>The PNG bytes of a plot at the given size.</summary>
    public static byte[] Png(Plot plot, int width = Width, int height = Height) =>
        plot.GetImageBytes(width, height, ImageFormat.Png);

    /// <summary>Writes <paramref name="path"/> as PNG, and the same name with .svg too when asked.</summary>
    public static void Save(Plot plot, string path, bool svg, int width = Width, int height = Height)
    {
        File.WriteAllBytes(path, Png(plot, width, height));
        if (svg) plot.SaveSvg(Path.ChangeExtension(path, ".svg"), width, height);
    }

    /// <summary>
    /// Skia's dependency-free Linux build finds no fonts on a machine without them and then draws no text at all,
    /// so the charts bring their own: Inter, embedded in this assembly, used for every label on every machine.
    /// </summary>
    private static void RegisterFont()
    {
        lock (FontLock)
        {
            if (fontRegistered) return;
            using var stream = typeof(ChartStyle).Assembly.GetManifestResourceStream("FlowHN.Reports.Inter-Regular.ttf")
                ?? throw new InvalidOperationException("The embedded chart font is missing from FlowHN.Reports.");
            Fonts.FontResolvers.Insert(0, new EmbeddedFontResolver(SKData.Create(stream)));
            Fonts.Default = FontName;
            fontRegistered = true;
        }
    }

    /// <summary>Answers every request for <see cref="FontName"/> (any weight or slant) with the embedded face.</summary>
    private sealed class EmbeddedFontResolver(SKData data) : IFontResolver
    {
        public SKTypeface? CreateTypeface(string fontName, bool bold, bool italic) =>
            fontName == FontName ? SKTypeface.FromData(data) : null;

        public SKTypeface? CreateTypeface(string fontName, FontWeight weight, FontSlant slant, FontSpacing spacing) =>
            CreateTypeface(fontName, weight >= FontWeight.SemiBold, slant != FontSlant.Upright);
    }
}
