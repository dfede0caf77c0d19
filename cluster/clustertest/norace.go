//go:build !race

package clustertest

// TimeScale stretches the Fast Raft timings; see race.go.
const TimeScale = 1
