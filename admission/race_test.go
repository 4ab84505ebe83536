//go:build race

package admission

// raceEnabled: the race detector slows the simulations about tenfold.
const raceEnabled = true
