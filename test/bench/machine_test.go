package main

import (
	"math"
	"strings"
	"testing"
)

func TestParseCPUTimesCountsIdleAndIOWaitAsNotBusy(t *testing.T) {
	// user nice system idle iowait irq softirq steal guest guest_nice
	stat := "cpu  100 5 50 800 30 3 2 10 40 0\ncpu0 50 2 25 400 15 1 1 5 20 0\n"
	got, err := parseCPUTimes(strings.NewReader(stat))
	if err != nil {
		t.Fatal(err)
	}
	// Guest time (40) is already in user: it must not be added again.
	want := cpuTimes{busy: 100 + 5 + 50 + 3 + 2 + 10, total: 100 + 5 + 50 + 800 + 30 + 3 + 2 + 10}
	if got != want {
		t.Fatalf("parseCPUTimes = %+v, want %+v", got, want)
	}
}

func TestParseCPUTimesRefusesAnotherFirstLine(t *testing.T) {
	for _, stat := range []string{"", "intr 1 2 3\n", "cpu 1 2 x 4 5\n"} {
		if got, err := parseCPUTimes(strings.NewReader(stat)); err == nil {
			t.Errorf("parseCPUTimes(%q) = %+v, want an error", stat, got)
		}
	}
}

func TestBusyShareIsTheBusyPartOfTheTicksBetween(t *testing.T) {
	a := cpuTimes{busy: 1000, total: 5000}
	b := cpuTimes{busy: 1930, total: 6000}
	if got := busyShare(a, b); math.Abs(got-0.93) > 1e-9 {
		t.Fatalf("busyShare = %v, want 0.93", got)
	}
	if got := busyShare(b, a); got != 0 {
		t.Fatalf("busyShare backwards = %v, want 0", got)
	}
}
