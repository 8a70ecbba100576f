//go:build race

package main

// raceEnabled: the race detector slows filling a tracker with a million
// grants several-fold; the constant-memory export test uses fewer rows.
const raceEnabled = true
