using System.Globalization;
using System.Text;

namespace LongCtx.Server;

/// <summary>A Prometheus histogram with fixed bucket bounds (seconds). Thread-safe.</summary>
internal sealed class PrometheusHistogram(string name, string help, double[] bounds)
{
    private readonly long[] _counts = new long[bounds.Length];
    private long _count;
    private double _sum;

    public void Observe(double value)
    {
        lock (_counts)
        {
            for (int i = 0; i < bounds.Length; i++) if (value <= bounds[i]) _counts[i]++;
            _count++;
            _sum += value;
        }
    }

    public void WriteTo(StringBuilder sb)
    {
        lock (_counts)
        {
            sb.Append($"# HELP {name} {help}\n# TYPE {name} histogram\n");
            for (int i = 0; i < bounds.Length; i++)
                sb.Append(CultureInfo.InvariantCulture, $"{name}_bucket{{le=\"{bounds[i]}\"}} {_counts[i]}\n");
            sb.Append(CultureInfo.InvariantCulture, $"{name}_bucket{{le=\"+Inf\"}} {_count}\n{name}_sum {_sum}\n{name}_count {_count}\n");
        }
    }
}
