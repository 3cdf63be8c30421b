package platform

import "strings"

// Default sets *v to def when *v is the zero value: for adapter Config
// fields where zero means "the platform's default".
func Default[T comparable](v *T, def T) {
	var zero T
	if *v == zero {
		*v = def
	}
}

// DefaultPositive sets *v to def unless *v is positive: for Config fields
// where zero and negative values both mean "the default".
func DefaultPositive[T ~int | ~int64](v *T, def T) {
	if *v <= 0 {
		*v = def
	}
}

// DefaultURL sets *v to def when it is empty, then drops trailing slashes.
func DefaultURL(v *string, def string) {
	Default(v, def)
	*v = strings.TrimRight(*v, "/")
}

// ClockOrReal returns c, or the wall clock when c is nil.
func ClockOrReal(c Clock) Clock {
	if c == nil {
		return RealClock{}
	}
	return c
}
