//go:build race

package lab

// raceEnabled reports whether the tests were built with -race.
const raceEnabled = true
