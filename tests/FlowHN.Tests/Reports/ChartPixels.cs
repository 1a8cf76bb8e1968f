using ScottPlot;
using SkiaSharp;

namespace FlowHN.Tests.Reports;

/// <summary>A rendered chart read back pixel by pixel, to check where things were drawn.</summary>
public sealed class ChartPixels
{
    private readonly SKColor[] pixels;

    public ChartPixels(byte[] png)
    {
        using var bitmap = SKBitmap.Decode(png) ?? throw new InvalidOperationException("not a decodable image");
        Width = bitmap.Width;
        Height = bitmap.Height;
        pixels = bitmap.Pixels;
    }

    public int Width { get; }
    public int Height { get; }

    public SKColor At(int x, int y) => pixels[y * Width + x];

    /// <summary>Standard deviation of the luminance: 0 for a blank (one-colour) image.</summary>
    public double LuminanceSpread()
    {
        var lum = pixels.Select(p => 0.299 * p.Red + 0.587 * p.Green + 0.114 * p.Blue).ToList();
        double mean = lum.Average();
        return Math.Sqrt(lum.Average(l => (l - mean) * (l - mean)));
    }

    /// <summary>Pixels close to <paramref name="color"/> (anti-aliased edges excluded) inside <paramref name="area"/>.</summary>
    public List<(int X, int Y)> Matching(Color color, PixelRect area, int tolerance = 24)
    {
        var found = new List<(int, int)>();
        for (int y = Math.Max(0, (int)area.Top); y < Math.Min(Height, (int)area.Bottom); y++)
            for (int x = Math.Max(0, (int)area.Left); x < Math.Min(Width, (int)area.Right); x++)
            {
                var p = At(x, y);
                if (Math.Abs(p.Red - color.R) + Math.Abs(p.Green - color.G) + Math.Abs(p.Blue - color.B) <= tolerance) found.Add((x, y));
            }
        return found;
    }
}
