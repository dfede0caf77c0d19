package console

import "strings"

// maxDiffLines bounds the files lineDiff compares line by line; larger
// ones are shown as removed and added whole.
const maxDiffLines = 3000

// diffLine is one line of a diff: Op is "+", "-" or " ".
type diffLine struct {
	Op, Text string
	// Class styles the line (diff-add, diff-del); the Op sign says the
	// same without colour.
	Class string
}

// lineDiff returns the lines of a and b as a diff (longest common
// subsequence), for showing a profile edit. It is presentation only.
func lineDiff(a, b string) []diffLine {
	x, y := strings.Split(strings.TrimRight(a, "\n"), "\n"), strings.Split(strings.TrimRight(b, "\n"), "\n")
	if a == "" {
		x = nil
	}
	if b == "" {
		y = nil
	}
	del := func(s string) diffLine { return diffLine{Op: "-", Text: s, Class: "diff-del"} }
	add := func(s string) diffLine { return diffLine{Op: "+", Text: s, Class: "diff-add"} }
	var out []diffLine
	if len(x) > maxDiffLines || len(y) > maxDiffLines {
		for _, s := range x {
			out = append(out, del(s))
		}
		for _, s := range y {
			out = append(out, add(s))
		}
		return out
	}
	// lcs[i][j] is the length of the common subsequence of x[i:], y[j:].
	lcs := make([][]int, len(x)+1)
	for i := range lcs {
		lcs[i] = make([]int, len(y)+1)
	}
	for i := len(x) - 1; i >= 0; i-- {
		for j := len(y) - 1; j >= 0; j-- {
			if x[i] == y[j] {
				lcs[i][j] = lcs[i+1][j+1] + 1
			} else {
				lcs[i][j] = max(lcs[i+1][j], lcs[i][j+1])
			}
		}
	}
	i, j := 0, 0
	for i < len(x) && j < len(y) {
		switch {
		case x[i] == y[j]:
			out = append(out, diffLine{Op: " ", Text: x[i]})
			i, j = i+1, j+1
		case lcs[i+1][j] >= lcs[i][j+1]:
			out = append(out, del(x[i]))
			i++
		default:
			out = append(out, add(y[j]))
			j++
		}
	}
	for ; i < len(x); i++ {
		out = append(out, del(x[i]))
	}
	for ; j < len(y); j++ {
		out = append(out, add(y[j]))
	}
	return out
}
