package main

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
)

// cpuTimes are the machine's CPU times, all CPUs together, in clock ticks
// since boot (the "cpu" line of /proc/stat).
type cpuTimes struct {
	busy, total uint64
}

// readCPUTimes reads /proc/stat; ok is false where there is none (not
// Linux), and the machine-busy row then says "–".
func readCPUTimes() (cpuTimes, bool) {
	f, err := os.Open("/proc/stat")
	if err != nil {
		return cpuTimes{}, false
	}
	defer f.Close()
	t, err := parseCPUTimes(f)
	return t, err == nil
}

// parseCPUTimes reads the first line of /proc/stat: "cpu" then user, nice,
// system, idle, iowait, irq, softirq, steal, guest, guest_nice. Guest time
// is already counted in user and nice, so total is the first eight fields,
// and idle and iowait are the time no CPU worked.
func parseCPUTimes(r io.Reader) (cpuTimes, error) {
	line, err := bufio.NewReader(r).ReadString('\n')
	if err != nil && line == "" {
		return cpuTimes{}, fmt.Errorf("/proc/stat: %w", err)
	}
	fields := strings.Fields(line)
	if len(fields) < 5 || fields[0] != "cpu" {
		return cpuTimes{}, fmt.Errorf("/proc/stat: first line %q is not the cpu line", strings.TrimSpace(line))
	}
	var t cpuTimes
	for i, f := range fields[1:min(len(fields), 9)] {
		v, err := strconv.ParseUint(f, 10, 64)
		if err != nil {
			return cpuTimes{}, fmt.Errorf("/proc/stat: cpu field %d: %w", i+1, err)
		}
		t.total += v
		if i != 3 && i != 4 { // idle, iowait
			t.busy += v
		}
	}
	return t, nil
}

// busyShare is the share of all CPUs' time that was busy between a and b,
// by every process on the machine (servers, brokers, the generator and
// anything else); 0 when nothing was measured.
func busyShare(a, b cpuTimes) float64 {
	if b.total <= a.total || b.busy < a.busy {
		return 0
	}
	return float64(b.busy-a.busy) / float64(b.total-a.total)
}
