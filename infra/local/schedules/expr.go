package schedules

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// errUnsupported marks an expression the ticker cannot fire.
var errUnsupported = errors.New("unsupported schedule expression")

// expression is a parsed schedule expression.
type expression interface {
	// next returns the first fire time strictly after t; ok is false when
	// there is none (a one-time schedule that has passed).
	next(t time.Time) (time.Time, bool)
}

// parseExpression reads at(...), rate(...) and cron(...) expressions.
// anchor is when a rate schedule starts counting (its start date or
// creation time).
func parseExpression(s string, loc *time.Location, anchor time.Time) (expression, error) {
	s = strings.TrimSpace(s)
	switch {
	case strings.HasPrefix(s, "at(") && strings.HasSuffix(s, ")"):
		t, err := time.ParseInLocation("2006-01-02T15:04:05", s[3:len(s)-1], loc)
		if err != nil {
			return nil, fmt.Errorf("%w: %s: %v", errUnsupported, s, err)
		}
		return atExpr{t}, nil
	case strings.HasPrefix(s, "rate(") && strings.HasSuffix(s, ")"):
		d, err := parseRate(s[5 : len(s)-1])
		if err != nil {
			return nil, fmt.Errorf("%w: %s: %v", errUnsupported, s, err)
		}
		return rateExpr{anchor: anchor, every: d}, nil
	case strings.HasPrefix(s, "cron(") && strings.HasSuffix(s, ")"):
		c, err := parseCron(s[5:len(s)-1], loc)
		if err != nil {
			return nil, fmt.Errorf("%w: %s: %v", errUnsupported, s, err)
		}
		return c, nil
	}
	return nil, fmt.Errorf("%w: %s", errUnsupported, s)
}

// atExpr fires once.
type atExpr struct{ at time.Time }

func (a atExpr) next(t time.Time) (time.Time, bool) {
	if a.at.After(t) {
		return a.at, true
	}
	return time.Time{}, false
}

// rateExpr fires at anchor + N·every, N ≥ 1.
type rateExpr struct {
	anchor time.Time
	every  time.Duration
}

func (r rateExpr) next(t time.Time) (time.Time, bool) {
	if t.Before(r.anchor) {
		return r.anchor.Add(r.every), true
	}
	n := t.Sub(r.anchor)/r.every + 1
	return r.anchor.Add(n * r.every), true
}

func parseRate(s string) (time.Duration, error) {
	fields := strings.Fields(s)
	if len(fields) != 2 {
		return 0, errors.New("want rate(value unit)")
	}
	n, err := strconv.Atoi(fields[0])
	if err != nil || n <= 0 {
		return 0, fmt.Errorf("value %q is not a positive integer", fields[0])
	}
	unit := map[string]time.Duration{
		"minute": time.Minute, "minutes": time.Minute,
		"hour": time.Hour, "hours": time.Hour,
		"day": 24 * time.Hour, "days": 24 * time.Hour,
	}[fields[1]]
	if unit == 0 {
		return 0, fmt.Errorf("unit %q is not minute(s), hour(s) or day(s)", fields[1])
	}
	if (n == 1) != !strings.HasSuffix(fields[1], "s") {
		return 0, fmt.Errorf("use %q with 1 and the plural otherwise", strings.TrimSuffix(fields[1], "s"))
	}
	return time.Duration(n) * unit, nil
}

// cronExpr is EventBridge's six-field cron: minutes hours day-of-month
// month day-of-week year, with * ? , - / and names; L, W and # are not
// supported.
type cronExpr struct {
	loc                                   *time.Location
	minutes, hours, dom, months, dow, yrs set
	domAny, dowAny                        bool
}

type set map[int]bool

var (
	monthNames = map[string]int{"JAN": 1, "FEB": 2, "MAR": 3, "APR": 4, "MAY": 5, "JUN": 6, "JUL": 7, "AUG": 8, "SEP": 9, "OCT": 10, "NOV": 11, "DEC": 12}
	dayNames   = map[string]int{"SUN": 1, "MON": 2, "TUE": 3, "WED": 4, "THU": 5, "FRI": 6, "SAT": 7}
)

func parseCron(s string, loc *time.Location) (*cronExpr, error) {
	f := strings.Fields(s)
	if len(f) != 6 {
		return nil, fmt.Errorf("want 6 fields, got %d", len(f))
	}
	c := &cronExpr{loc: loc}
	var err error
	if c.minutes, err = parseField(f[0], 0, 59, nil); err != nil {
		return nil, fmt.Errorf("minutes: %w", err)
	}
	if c.hours, err = parseField(f[1], 0, 23, nil); err != nil {
		return nil, fmt.Errorf("hours: %w", err)
	}
	c.domAny = f[2] == "?"
	c.dowAny = f[4] == "?"
	if c.domAny == c.dowAny {
		return nil, errors.New("exactly one of day-of-month and day-of-week must be ?")
	}
	if !c.domAny {
		if c.dom, err = parseField(f[2], 1, 31, nil); err != nil {
			return nil, fmt.Errorf("day-of-month: %w", err)
		}
	}
	if c.months, err = parseField(f[3], 1, 12, monthNames); err != nil {
		return nil, fmt.Errorf("month: %w", err)
	}
	if !c.dowAny {
		if c.dow, err = parseField(f[4], 1, 7, dayNames); err != nil {
			return nil, fmt.Errorf("day-of-week: %w", err)
		}
	}
	if c.yrs, err = parseField(f[5], 1970, 2199, nil); err != nil {
		return nil, fmt.Errorf("year: %w", err)
	}
	return c, nil
}

func parseField(s string, lo, hi int, names map[string]int) (set, error) {
	out := set{}
	for _, part := range strings.Split(s, ",") {
		if unsupportedAtom(part, names) {
			return nil, fmt.Errorf("%q is not supported locally", part)
		}
		step := 1
		if base, st, ok := strings.Cut(part, "/"); ok {
			n, err := strconv.Atoi(st)
			if err != nil || n <= 0 {
				return nil, fmt.Errorf("bad step in %q", part)
			}
			step, part = n, base
		}
		from, to := lo, hi
		switch {
		case part == "*" || part == "?":
		case strings.Contains(part, "-"):
			a, b, _ := strings.Cut(part, "-")
			var err error
			if from, err = value(a, names); err != nil {
				return nil, err
			}
			if to, err = value(b, names); err != nil {
				return nil, err
			}
		default:
			v, err := value(part, names)
			if err != nil {
				return nil, err
			}
			from = v
			if step == 1 {
				to = v
			}
		}
		if from < lo || to > hi || from > to {
			return nil, fmt.Errorf("%q is out of range %d-%d", part, lo, hi)
		}
		for v := from; v <= to; v += step {
			out[v] = true
		}
	}
	return out, nil
}

// unsupportedAtom spots L, W and # (last, weekday, nth) in a field part,
// without mistaking names such as JUL or WED for them.
func unsupportedAtom(part string, names map[string]int) bool {
	if strings.Contains(part, "#") {
		return true
	}
	for _, atom := range strings.FieldsFunc(part, func(r rune) bool { return r == '-' || r == '/' }) {
		if _, isName := names[strings.ToUpper(atom)]; isName {
			continue
		}
		if strings.ContainsAny(strings.ToUpper(atom), "LW") {
			return true
		}
	}
	return false
}

func value(s string, names map[string]int) (int, error) {
	if v, ok := names[strings.ToUpper(s)]; ok {
		return v, nil
	}
	v, err := strconv.Atoi(s)
	if err != nil {
		return 0, fmt.Errorf("%q is not a number", s)
	}
	return v, nil
}

func (c *cronExpr) dayMatches(d time.Time) bool {
	if !c.months[int(d.Month())] || !c.yrs[d.Year()] {
		return false
	}
	if c.domAny {
		return c.dow[int(d.Weekday())+1]
	}
	return c.dom[d.Day()]
}

// next scans day by day, then minute by minute within a matching day, in
// the schedule's time zone; it looks ahead up to five years.
func (c *cronExpr) next(t time.Time) (time.Time, bool) {
	lt := t.In(c.loc).Truncate(time.Minute).Add(time.Minute)
	day := time.Date(lt.Year(), lt.Month(), lt.Day(), 0, 0, 0, 0, c.loc)
	for i := 0; i < 5*366; i++ {
		if c.dayMatches(day) {
			for h := 0; h < 24; h++ {
				if !c.hours[h] {
					continue
				}
				for m := 0; m < 60; m++ {
					if !c.minutes[m] {
						continue
					}
					cand := time.Date(day.Year(), day.Month(), day.Day(), h, m, 0, 0, c.loc)
					if cand.Hour() != h || cand.Minute() != m {
						continue // skipped by a daylight-saving jump
					}
					if !cand.Before(lt) {
						return cand, true
					}
				}
			}
		}
		day = time.Date(day.Year(), day.Month(), day.Day()+1, 0, 0, 0, 0, c.loc)
	}
	return time.Time{}, false
}
