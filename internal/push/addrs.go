package push

import "net/netip"

// specialPrefixes are the address ranges a push connection never goes to:
// everything of the IANA IPv4 and IPv6 special-purpose address registries
// that is not globally reachable, plus the translation ranges through which
// a public-looking address reaches a private one. Loopback is listed apart
// (tests allow it).
var specialPrefixes = func() []netip.Prefix {
	var out []netip.Prefix
	for _, s := range []string{
		// IPv4
		"0.0.0.0/8",       // "this network"
		"10.0.0.0/8",      // private (RFC 1918)
		"100.64.0.0/10",   // shared address space, CGNAT (RFC 6598)
		"169.254.0.0/16",  // link-local, cloud metadata services
		"172.16.0.0/12",   // private (RFC 1918)
		"192.0.0.0/24",    // IETF protocol assignments
		"192.0.2.0/24",    // documentation (TEST-NET-1)
		"192.31.196.0/24", // AS112
		"192.52.193.0/24", // AMT
		"192.88.99.0/24",  // deprecated 6to4 relay anycast
		"192.168.0.0/16",  // private (RFC 1918)
		"192.175.48.0/24", // AS112 direct delegation
		"198.18.0.0/15",   // benchmarking (RFC 2544)
		"198.51.100.0/24", // documentation (TEST-NET-2)
		"203.0.113.0/24",  // documentation (TEST-NET-3)
		"224.0.0.0/4",     // multicast
		"240.0.0.0/4",     // reserved, and the broadcast address
		// IPv6
		"::/128",         // unspecified
		"::ffff:0:0/96",  // IPv4-mapped (checked unmapped as well)
		"::/96",          // deprecated IPv4-compatible
		"64:ff9b::/96",   // NAT64 well-known prefix
		"64:ff9b:1::/48", // local-use NAT64
		"100::/64",       // discard-only
		"2001::/23",      // IETF protocol assignments (Teredo, ORCHID, ...)
		"2001:db8::/32",  // documentation
		"2002::/16",      // 6to4: embeds an IPv4 address
		"3fff::/20",      // documentation
		"5f00::/16",      // SRv6 SIDs
		"fc00::/7",       // unique local (ULA)
		"fe80::/10",      // link-local
		"fec0::/10",      // deprecated site-local
		"ff00::/8",       // multicast
	} {
		out = append(out, netip.MustParsePrefix(s))
	}
	return out
}()

// allowedAddr says whether a push connection may go to ip: a globally
// reachable unicast address, or loopback when allowLoopback (tests).
func allowedAddr(ip netip.Addr, allowLoopback bool) bool {
	if !ip.IsValid() {
		return false
	}
	ip = ip.Unmap().WithZone("")
	if ip.IsLoopback() {
		return allowLoopback
	}
	for _, p := range specialPrefixes {
		if p.Contains(ip) {
			return false
		}
	}
	return true
}
