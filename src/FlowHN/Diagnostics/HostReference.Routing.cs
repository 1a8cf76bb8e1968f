namespace FlowHN.Diagnostics;

internal static partial class HostReference
{
    /// <summary>part[b, i, :] = seq[b, positions[i], :] for seq [batch, length, dim].</summary>
    public static double[] GatherTokens(float[] seq, int batch, int length, int dim, int[] positions)
    {
        var part = new double[batch * positions.Length * dim];
        for (int b = 0; b < batch; b++)
            for (int i = 0; i < positions.Length; i++)
                for (int j = 0; j < dim; j++)
                    part[(b * positions.Length + i) * dim + j] = seq[(b * length + positions[i]) * dim + j];
        return part;
    }

    /// <summary>seq[b, positions[i], :] += part[b, i, :], starting from <paramref name="seq"/> (not modified).</summary>
    public static double[] ScatterAddTokens(float[] seq, int batch, int length, int dim, float[] part, int[] positions)
    {
        var result = seq.Select(v => (double)v).ToArray();
        for (int b = 0; b < batch; b++)
            for (int i = 0; i < positions.Length; i++)
                for (int j = 0; j < dim; j++)
                    result[(b * length + positions[i]) * dim + j] += part[(b * positions.Length + i) * dim + j];
        return result;
    }

    /// <summary>
    /// The sequence [batch, length, dim] holding each part's rows at its positions; positions covering nothing are
    /// NaN, so a merge of lists that miss a token cannot pass a comparison.
    /// </summary>
    public static double[] MergeTokens(int batch, int length, int dim, params (float[] Part, int[] Positions)[] parts)
    {
        var seq = Enumerable.Repeat(double.NaN, batch * length * dim).ToArray();
        foreach (var (part, positions) in parts)
            for (int b = 0; b < batch; b++)
                for (int i = 0; i < positions.Length; i++)
                    for (int j = 0; j < dim; j++)
                        seq[(b * length + positions[i]) * dim + j] = part[(b * positions.Length + i) * dim + j];
        return seq;
    }
}
