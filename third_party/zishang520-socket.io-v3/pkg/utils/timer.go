package utils

import (
	"runtime"
	"sync"
	"time"
)

// Timer is a timeout or an interval built on time.AfterFunc: a pending
// timer holds no goroutine, the callback runs on its own goroutine when the
// timer fires. (Patched by web3-socket: upstream v3.0.6 starts a goroutine
// per timer that waits on the timer's channel; see third_party/README.md.)
type Timer struct {
	mu      sync.Mutex
	timer   *time.Timer
	sleep   time.Duration
	stopped bool
}

// Refresh starts the timer again for its full duration, also after it
// fired or was stopped.
func (t *Timer) Refresh() *Timer {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.stopped = false
	t.timer.Reset(t.sleep)
	return t
}

func (t *Timer) Unref() {
	runtime.AddCleanup(t, func(timer *time.Timer) {
		timer.Stop()
	}, t.timer)
}

func SetTimeout(fn func(), sleep time.Duration) *Timer {
	return &Timer{timer: time.AfterFunc(sleep, fn), sleep: sleep}
}

func ClearTimeout(timer *Timer) {
	if timer != nil {
		timer.Stop()
	}
}

func (t *Timer) Stop() {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.stopped = true
	t.timer.Stop()
}

func SetInterval(fn func(), sleep time.Duration) *Timer {
	timer := &Timer{sleep: sleep}
	timer.mu.Lock()
	defer timer.mu.Unlock()
	timer.timer = time.AfterFunc(sleep, func() {
		timer.mu.Lock()
		if timer.stopped {
			timer.mu.Unlock()
			return
		}
		timer.timer.Reset(timer.sleep)
		timer.mu.Unlock()
		fn()
	})
	return timer
}

func ClearInterval(timer *Timer) {
	ClearTimeout(timer)
}
