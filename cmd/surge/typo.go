package main

import (
	"flag"
	"strings"
)

// didYouMean returns "; did you mean P?" where P is prefix+the candidate
// closest to typed, or "" when none is close enough to be the one meant.
func didYouMean(typed, prefix string, candidates []string) string {
	best, bestDist := "", 0
	norm := strings.ReplaceAll(strings.ToLower(typed), "_", "-")
	for _, c := range candidates {
		d := editDistance(norm, c)
		if best == "" || d < bestDist {
			best, bestDist = c, d
		}
	}
	// One edit in a short name, two in a longer one: more would guess
	// a different word (delete is not create).
	limit := min(2, max(1, len(typed)/4))
	if best == "" || bestDist > limit {
		return ""
	}
	return "; did you mean " + prefix + best + "?"
}

// flagTypo is didYouMean for the flag named in the flag package's
// "flag provided but not defined: -NAME".
func flagTypo(fs *flag.FlagSet, err error) string {
	name, ok := strings.CutPrefix(err.Error(), "flag provided but not defined: ")
	if !ok {
		return ""
	}
	var names []string
	fs.VisitAll(func(fl *flag.Flag) { names = append(names, fl.Name) })
	return didYouMean(strings.TrimLeft(name, "-"), "--", names)
}

// editDistance is the optimal string alignment distance of a and b:
// insertions, deletions, substitutions and swaps of neighbours each count 1.
// Written here: the standard library has none, and a dozen lines over
// names of a few letters do not warrant a dependency.
func editDistance(a, b string) int {
	prev2 := make([]int, len(b)+1)
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
			if i > 1 && j > 1 && a[i-1] == b[j-2] && a[i-2] == b[j-1] {
				cur[j] = min(cur[j], prev2[j-2]+1)
			}
		}
		prev2, prev, cur = prev, cur, prev2
	}
	return prev[len(b)]
}
