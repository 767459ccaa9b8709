using System.Net;
using System.Net.NetworkInformation;
using System.Net.Sockets;

namespace LongCtx.Server;

/// <summary>
/// The address --host names, checked before anything listens: an address of this machine (loopback or one of its
/// interfaces'), a name that resolves to one (localhost: the loopback address), or 0.0.0.0 / :: — the explicit choice
/// of every interface. Anything else (a typo such as "locahost" or "127.0.0.l", another machine's address) refuses to
/// start: Kestrel would otherwise listen on every interface for a name it cannot bind.
/// </summary>
public static class BindAddress
{
    private static readonly TimeSpan ResolveTimeout = TimeSpan.FromSeconds(5);

    public static IPAddress Resolve(string host)
    {
        string name = host.Trim();
        if (name.StartsWith('[') && name.EndsWith(']')) name = name[1..^1];
        if (name.Length == 0) throw new LongCtxException("--host is empty: use 127.0.0.1 (this machine only) or 0.0.0.0 (every interface)");
        if (IPAddress.TryParse(name, out var ip) && (name.Contains(':') || name.Count(c => c == '.') == 3))
        {
            if (ip.Equals(IPAddress.Any) || ip.Equals(IPAddress.IPv6Any) || IsLocal(ip)) return ip;
            throw new LongCtxException($"--host {host} is not an address of this machine: use 127.0.0.1 (this machine only), one of its addresses, or 0.0.0.0 (every interface)");
        }
        if (string.Equals(name, "localhost", StringComparison.OrdinalIgnoreCase)) return IPAddress.Loopback;
        IPAddress[] resolved;
        try
        {
            var lookup = Dns.GetHostAddressesAsync(name);
            resolved = lookup.Wait(ResolveTimeout) ? lookup.Result : [];
        }
        catch (AggregateException e) when (e.InnerException is SocketException or ArgumentException) { resolved = []; }
        // IPv4 first: a client that asks for the name by IPv4 finds the server there.
        var local = resolved.Where(IsLocal).OrderBy(a => a.AddressFamily == AddressFamily.InterNetwork ? 0 : 1).FirstOrDefault();
        if (local is not null) return local;
        string found = resolved.Length == 0 ? "does not resolve" : $"resolves to {string.Join(", ", resolved.Select(a => a.ToString()))}, not an address of this machine";
        throw new LongCtxException($"--host {host} {found}: use localhost or 127.0.0.1 (this machine only), one of its addresses, or 0.0.0.0 (every interface)");
    }

    /// <summary>Whether the server would listen on every interface.</summary>
    public static bool IsWildcard(IPAddress ip) => ip.Equals(IPAddress.Any) || ip.Equals(IPAddress.IPv6Any);

    /// <summary>Loopback, or an address one of this machine's interfaces holds.</summary>
    public static bool IsLocal(IPAddress ip)
    {
        if (IPAddress.IsLoopback(ip)) return true;
        try
        {
            return NetworkInterface.GetAllNetworkInterfaces()
                .SelectMany(n => n.GetIPProperties().UnicastAddresses)
                .Any(a => a.Address.Equals(ip));
        }
        catch (NetworkInformationException) { return false; }
    }
}
