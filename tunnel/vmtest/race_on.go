//go:build race

package vmtest

// raceEnabled reports whether the race detector is built in.
const raceEnabled = true
