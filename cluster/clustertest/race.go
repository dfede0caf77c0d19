//go:build race

package clustertest

// TimeScale stretches the Fast Raft timings under the race detector, which
// slows the code several times over: a leader whose lease is shorter than a
// scheduling stall on a loaded machine steps down in the middle of a test.
const TimeScale = 3
