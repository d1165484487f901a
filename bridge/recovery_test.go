package bridge

import (
	"slices"
	"strconv"
	"testing"
)

// TestRecoveryGateDropsLivePacketsRecoveryAlreadySent: packets delivered
// live while recovery reads the log are held; once it is released (having
// read the log up to offset 1-5), live packets up to 1-5 are dropped, since
// recovery sent them, and those after it pass, after which the gate has
// nothing left to do.
func TestRecoveryGateDropsLivePacketsRecoveryAlreadySent(t *testing.T) {
	compare := func(a, b string) int {
		x, _ := strconv.Atoi(a[2:])
		y, _ := strconv.Atoi(b[2:])
		return x - y
	}
	packets := make([]encodedPacket, 9)
	for i := range packets {
		packets[i].offset = "1-" + strconv.Itoa(i+1)
	}
	var g recoveryGate
	if write, past := g.pass(packets, []int{0, 1}, compare); write != nil || past {
		t.Fatalf("before release: pass = %v, %v; want everything held", write, past)
	}
	if len(g.held) != 2 {
		t.Fatalf("held %d packets, want 2", len(g.held))
	}
	g.released, g.floor = true, "1-5"
	if write, past := g.pass(packets, []int{2, 3, 4}, compare); write != nil || past {
		t.Fatalf("up to the floor: pass = %v, %v; want nothing written", write, past)
	}
	if write, past := g.pass(packets, []int{4, 5, 6}, compare); !slices.Equal(write, []int{5, 6}) || !past {
		t.Fatalf("across the floor: pass = %v, %v; want [5 6], true", write, past)
	}
}
