package main

import "testing"

// TestPinSplit checks --pin's CPU lists: the server's as given, the
// workers' every other CPU, and bad lists refused.
func TestPinSplit(t *testing.T) {
	for _, c := range []struct {
		pin, server, workers string
		n                    int
	}{
		{"0", "0", "1", 2},
		{"1", "1", "0", 2},
		{"0-1,3", "0-1,3", "2", 4},
	} {
		s, w, err := pinFlag(c.pin).split(c.n)
		if err != nil || s != c.server || w != c.workers {
			t.Errorf("--pin=%s on %d CPUs: %q %q %v", c.pin, c.n, s, w, err)
		}
	}
	for _, bad := range []string{"0-1", "2", "x", "1-0", "-1"} {
		if _, _, err := pinFlag(bad).split(2); err == nil {
			t.Errorf("--pin=%s on 2 CPUs accepted", bad)
		}
	}
	var p pinFlag
	if err := p.Set("true"); err != nil || p != "0" {
		t.Errorf("--pin alone: %q %v", p, err)
	}
}
