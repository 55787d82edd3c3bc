package push

import (
	"net/netip"
	"testing"
)

func TestAllowedAddr(t *testing.T) {
	for _, c := range []struct {
		addr string
		want bool
	}{
		{"8.8.8.8", true}, {"142.250.1.1", true}, {"2607:f8b0:4004:800::200e", true},
		{"10.0.0.1", false}, {"172.31.255.255", false}, {"192.168.0.1", false}, {"100.100.1.1", false},
		{"198.19.255.1", false}, {"169.254.169.254", false}, {"127.0.0.1", false}, {"0.1.2.3", false},
		{"::1", false}, {"fd12:3456::1", false}, {"fe80::1%eth0", false}, {"64:ff9b::7f00:1", false},
		{"::ffff:192.168.1.1", false}, {"2001:db8::1", false}, {"2002:c0a8:101::1", false}, {"ff02::1", false},
	} {
		if got := allowedAddr(netip.MustParseAddr(c.addr), false); got != c.want {
			t.Errorf("allowedAddr(%s) = %v, want %v", c.addr, got, c.want)
		}
	}
	if !allowedAddr(netip.MustParseAddr("127.0.0.1"), true) {
		t.Error("loopback refused with allowLoopback")
	}
}

func TestHostAllowed(t *testing.T) {
	pats := []string{"fcm.googleapis.com", "*.push.services.mozilla.com"}
	for host, want := range map[string]bool{
		"fcm.googleapis.com": true, "FCM.googleapis.com.": true, "updates.push.services.mozilla.com": true,
		"push.services.mozilla.com": false, "evil.com": false, "fcm.googleapis.com.evil.com": false,
	} {
		if got := hostAllowed(host, pats); got != want {
			t.Errorf("hostAllowed(%q) = %v, want %v", host, got, want)
		}
	}
	if !hostAllowed("anything.example", nil) {
		t.Error("no patterns must allow every host")
	}
}
