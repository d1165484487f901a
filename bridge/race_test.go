//go:build race

package bridge

// raceBuild says the race detector is on: its instrumentation makes
// goroutine stacks about twice as deep.
const raceBuild = true
