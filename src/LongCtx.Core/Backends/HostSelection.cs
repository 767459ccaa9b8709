namespace LongCtx.Backends;

/// <summary>The host's <see cref="ICompressionOps.TopRowsPerHead"/>: the rows of a head's highest scores, by selection.</summary>
public static class HostSelection
{
    /// <summary>
    /// The rows of the <paramref name="count"/> highest scores of head h, ascending; ties at the cut go to the
    /// earlier rows (NaN counts as −inf). Linear time: the cut is found by selection, not by sorting a block's
    /// tens of thousands of entries per head and layer.
    /// </summary>
    public static int[] TopRows(float[] scores, int n, int heads, int h, int count)
    {
        if (count >= n) return Enumerable.Range(0, n).ToArray();
        if (count <= 0) return [];
        var column = new float[n];
        for (int i = 0; i < n; i++)
        {
            float x = scores[i * heads + h];
            column[i] = float.IsNaN(x) ? float.NegativeInfinity : x;
        }
        float cut = Select((float[])column.Clone(), n - count);
        int ties = count;
        foreach (float x in column)
            if (x > cut) ties--;
        var top = new int[count];
        int m = 0;
        for (int i = 0; i < n && m < count; i++)
            if (column[i] > cut || (column[i] == cut && ties-- > 0)) top[m++] = i;
        return top;
    }

    /// <summary>The value that would sit at index k if <paramref name="values"/> were sorted ascending (Hoare's selection; reorders values).</summary>
    private static float Select(float[] values, int k)
    {
        int lo = 0, hi = values.Length - 1;
        while (lo < hi)
        {
            float pivot = MedianOfThree(values[lo], values[lo + (hi - lo) / 2], values[hi]);
            int i = lo, j = hi;
            while (i <= j)
            {
                while (values[i] < pivot) i++;
                while (values[j] > pivot) j--;
                if (i > j) break;
                (values[i], values[j]) = (values[j], values[i]);
                i++;
                j--;
            }
            // Now values[lo..j] <= pivot <= values[i..hi], and anything strictly between j and i equals the pivot.
            if (k <= j) hi = j;
            else if (k >= i) lo = i;
            else return values[k];
        }
        return values[k];
    }

    private static float MedianOfThree(float a, float b, float c) => Math.Max(Math.Min(a, b), Math.Min(Math.Max(a, b), c));
}
