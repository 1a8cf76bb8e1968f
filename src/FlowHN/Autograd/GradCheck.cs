using FlowHN.Runtime;
using FlowHN.Tensors;
using MathNet.Numerics.Distributions;

namespace FlowHN.Autograd;

/// <summary>Result of a finite-difference gradient check for one input.</summary>
public sealed record GradCheckResult(string Input, int Coordinates, double RelativeError, double MaxAbsoluteError)
{
    public override string ToString() =>
        $"{Input}: {Coordinates} coordinates, relative error {RelativeError:E2}, max abs error {MaxAbsoluteError:E2}";
}

/// <summary>
/// Compares the tape's gradients with central finite differences. The scalar checked is
/// L = sum(f(inputs) * R) for a fixed random R, so every output element and every path is exercised.
/// The error is ||numeric - analytic|| / max(||numeric||, ||analytic||) over the sampled coordinates, summed
/// in float64 on the host; with float32 forwards a correct gradient lands around 1e-4..1e-3 while a wrong
/// one (missing term, wrong index, wrong sign) lands near 1.
/// </summary>
public static class GradCheck
{
    public static IReadOnlyList<GradCheckResult> Run(Session device, Func<Tensor> forward, IReadOnlyList<Tensor> inputs,
        int seed = 1, float step = 1e-2f, int maxCoordinates = 48)
    {
        foreach (var input in inputs)
        {
            if (!input.RequiresGrad) throw new ArgumentException("Every checked input must require a gradient.");
            if (input.Grad is not null && input is not Parameter) input.Grad = null;
            (input as Parameter)?.ZeroGrad();
        }

        var random = new Random(seed);
        float[] weights;
        using (var scope = device.BeginScope())
        {
            var output = forward();
            weights = Normal.Samples(random, 0, 1).Take((int)output.Length).Select(x => (float)x).ToArray();
            var weightTensor = Tensor.FromArray(device, weights, output.Shape);
            device.Tape.Backward(output, weightTensor);
            // Keep analytic gradients on the host before the scope frees intermediate buffers.
            var analytic = inputs.Select(t => t.Grad!.ToArray()).ToList();
            return inputs.Select((t, i) => CheckInput(device, forward, t, $"input {i}", analytic[i], weights, random, step,
                maxCoordinates)).ToList();
        }
    }

    private static GradCheckResult CheckInput(Session device, Func<Tensor> forward, Tensor input, string name,
        float[] analytic, float[] weights, Random random, float step, int maxCoordinates)
    {
        var values = input.ToArray();
        // A parameter's vocabulary padding rows (its last elements) are left out: nothing reads them.
        int real = (int)((input as Parameter)?.RealLength ?? values.Length);
        int count = Math.Min(maxCoordinates, real);
        var coordinates = Enumerable.Range(0, real).OrderBy(_ => random.Next()).Take(count).ToArray();
        double diff2 = 0, numeric2 = 0, analytic2 = 0, maxAbs = 0;
        using var noGrad = new NoGradScope(device);
        foreach (int c in coordinates)
        {
            float original = values[c];
            values[c] = original + step;
            input.CopyFrom(values);
            double plus = Objective(device, forward, weights);
            values[c] = original - step;
            input.CopyFrom(values);
            double minus = Objective(device, forward, weights);
            values[c] = original;
            input.CopyFrom(values);
            // Divide by the step actually taken in float32, not the nominal one.
            double numeric = (plus - minus) / ((double)(original + step) - (double)(original - step));
            double a = analytic[c];
            diff2 += (numeric - a) * (numeric - a);
            numeric2 += numeric * numeric;
            analytic2 += a * a;
            maxAbs = Math.Max(maxAbs, Math.Abs(numeric - a));
        }
        double scale = Math.Max(Math.Sqrt(Math.Max(numeric2, analytic2)), 1e-12);
        return new GradCheckResult(name, count, Math.Sqrt(diff2) / scale, maxAbs);
    }

    private static double Objective(Session device, Func<Tensor> forward, float[] weights)
    {
        using var scope = device.BeginScope();
        var output = forward().ToArray();
        double sum = 0;
        for (int i = 0; i < output.Length; i++) sum += (double)output[i] * weights[i];
        return sum;
    }
}
