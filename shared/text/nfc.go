package text

//go:generate sh -c "python3 gen_tables.py > tables.go"

import (
	"sort"

	"golang.org/x/text/unicode/norm"
)

// runeRange is an inclusive range of code points.
type runeRange struct{ lo, hi rune }

// inRanges reports whether r is in the sorted table t.
func inRanges(r rune, t []runeRange) bool {
	i := sort.Search(len(t), func(i int) bool { return t[i].hi >= r })
	return i < len(t) && t[i].lo <= r
}

// nfc returns s in Unicode Normalization Form C, as X counts it.
func nfc(s string) string { return norm.NFC.String(s) }
