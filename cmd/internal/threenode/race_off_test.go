//go:build !race

package threenode

const raceEnabled = false
