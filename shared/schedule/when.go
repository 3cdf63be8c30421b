package schedule

import (
	"fmt"
	"strings"
	"time"

	"github.com/posse-dev/posse/shared/apperr"
)

// Time limits of a schedule.
const (
	// ClockSkew is how far in the past a requested time may be: a time up to
	// this much ago fires at once; anything older is refused.
	ClockSkew = 60 * time.Second
	// MaxAhead is how far ahead a schedule may be.
	MaxAhead = 2 * 366 * 24 * time.Hour
)

// wallLayout is a local wall time to the second, as Scheduler's at() takes
// it.
const wallLayout = "2006-01-02T15:04:05"

// wallLayouts are the accepted forms of a local wall time (no offset).
var wallLayouts = []string{"2006-01-02T15:04:05.999999999", "2006-01-02T15:04"}

// When is a resolved schedule time: the instant it fires and the time zone
// it is expressed in.
type When struct {
	// At is the instant, in UTC, to the second.
	At time.Time
	// Zone is the schedule's IANA time zone.
	Zone string
	// Resolution is set when the request gave a local wall time that occurs
	// twice in Zone (the hour the clocks go back): which instant was chosen.
	Resolution *Resolution
}

// Resolution explains how an ambiguous local time was resolved.
type Resolution struct {
	// Input is the local wall time as requested.
	Input string `json:"input" dynamodbav:"input"`
	// Chosen is the instant used: the first occurrence.
	Chosen time.Time `json:"chosen" dynamodbav:"chosen"`
	// Other is the second occurrence, not used.
	Other time.Time `json:"other" dynamodbav:"other"`
	// Note says the same in words.
	Note string `json:"note" dynamodbav:"note"`
}

// Local returns the wall time of w in its zone, to the second.
func (w When) Local() string { return w.At.In(w.location()).Format(wallLayout) }

// InZone returns the instant in the schedule's zone.
func (w When) InZone() time.Time { return w.At.In(w.location()) }

func (w When) location() *time.Location {
	loc, err := LoadZone(w.Zone)
	if err != nil {
		return time.UTC
	}
	return loc
}

// LoadZone returns the IANA time zone name, refusing "" and "Local" (which
// would be the server's zone, not the site's).
func LoadZone(name string) (*time.Location, error) {
	if name == "" || name == "Local" || strings.TrimSpace(name) != name {
		return nil, fmt.Errorf("load time zone %q: not an IANA time zone name", name)
	}
	loc, err := time.LoadLocation(name)
	if err != nil {
		return nil, fmt.Errorf("load time zone %q: %w", name, err)
	}
	return loc, nil
}

// Request is a requested schedule time, as the API receives it.
type Request struct {
	// ScheduledFor is RFC 3339 with an offset, or a local wall time without
	// one (2027-03-28T09:30:00 or 2027-03-28T09:30).
	ScheduledFor string
	// Timezone is an IANA zone; "" means DefaultZone.
	Timezone string
	// DefaultZone is the zone used when Timezone is empty: the site's (on
	// create) or the schedule's (on change).
	DefaultZone string
}

// Resolve turns a requested time into a When, judged against now. A time
// that cannot be read, or an unknown zone, is an invalid error (400); a
// time too far in the past (beyond ClockSkew) or ahead (MaxAhead), or a
// local time that does not exist in its zone (the clocks jump over it), is
// unprocessable (422). A local time that occurs twice resolves to its first
// occurrence, and When.Resolution says so. Sub-second parts are dropped.
func Resolve(req Request, now time.Time) (When, error) {
	zone := req.Timezone
	if zone == "" {
		zone = req.DefaultZone
	}
	loc, err := LoadZone(zone)
	if err != nil {
		field := "timezone"
		if req.Timezone == "" {
			// The site's or schedule's own zone is stored validated; a bad
			// one here is ours.
			return When{}, fmt.Errorf("resolve schedule time: default zone: %w", err)
		}
		return When{}, apperr.Invalid(field, fmt.Sprintf("%q is not an IANA time zone (such as Europe/Berlin or America/New_York)", req.Timezone))
	}
	in := strings.TrimSpace(req.ScheduledFor)
	if in == "" {
		return When{}, apperr.Invalid("scheduledFor", "is required: an RFC 3339 time with an offset (2027-03-28T09:30:00+02:00), or a local time (2027-03-28T09:30:00) in timezone or the site's zone")
	}
	w := When{Zone: zone}
	if t, err := time.Parse(time.RFC3339Nano, in); err == nil {
		w.At = t.UTC().Truncate(time.Second)
	} else {
		wall, ok := parseWall(in)
		if !ok {
			return When{}, apperr.Invalid("scheduledFor", fmt.Sprintf("%q is not a time: give RFC 3339 with an offset (2027-03-28T09:30:00+02:00) or a local time without one (2027-03-28T09:30:00)", in))
		}
		at, res, err := resolveWall(wall, loc, zone)
		if err != nil {
			return When{}, err
		}
		w.At, w.Resolution = at, res
	}
	if err := check(w, now); err != nil {
		return When{}, err
	}
	return w, nil
}

// check refuses a time in the past beyond ClockSkew or too far ahead.
func check(w When, now time.Time) error {
	switch {
	case w.At.Before(now.Add(-ClockSkew)):
		return apperr.Unprocessable("scheduled_in_past", fmt.Sprintf(
			"scheduledFor %s is in the past (now is %s); a schedule may be at most %s late",
			w.InZone().Format(time.RFC3339), now.In(w.location()).Format(time.RFC3339), ClockSkew),
			[]apperr.Problem{{Field: "scheduledFor", Message: "is in the past"}})
	case w.At.After(now.Add(MaxAhead)):
		return apperr.Unprocessable("scheduled_too_far_ahead", fmt.Sprintf(
			"scheduledFor %s is more than %d days ahead", w.InZone().Format(time.RFC3339), MaxAhead/(24*time.Hour)),
			[]apperr.Problem{{Field: "scheduledFor", Message: "is too far ahead"}})
	}
	return nil
}

// parseWall reads a local wall time without offset, to the second.
func parseWall(s string) (time.Time, bool) {
	for _, l := range wallLayouts {
		if t, err := time.Parse(l, s); err == nil {
			return t.Truncate(time.Second), true
		}
	}
	return time.Time{}, false
}

// resolveWall finds the instants whose wall time in loc is wall (read as
// UTC fields): none (a gap: 422), one, or two (an overlap: the first, with
// a Resolution).
func resolveWall(wall time.Time, loc *time.Location, zone string) (time.Time, *Resolution, error) {
	instants := instantsOf(wall, loc)
	input := wall.Format(wallLayout)
	switch len(instants) {
	case 0:
		msg := fmt.Sprintf("%s does not exist in %s: the clocks skip it", input, zone)
		if from, to, ok := gapAround(wall, loc); ok {
			msg = fmt.Sprintf("%s does not exist in %s: on %s the clocks jump from %s to %s (daylight saving time); choose a time outside that gap",
				input, zone, wall.Format("2006-01-02"), from, to)
		}
		return time.Time{}, nil, apperr.Unprocessable("nonexistent_local_time", msg,
			[]apperr.Problem{{Field: "scheduledFor", Message: msg}})
	case 1:
		return instants[0], nil, nil
	}
	first, second := instants[0], instants[len(instants)-1]
	res := &Resolution{Input: input, Chosen: first.In(loc), Other: second.In(loc)}
	res.Note = fmt.Sprintf("%s occurs twice in %s (the clocks go back); the first occurrence, %s, was chosen (the other is %s)",
		input, zone, res.Chosen.Format(time.RFC3339), res.Other.Format(time.RFC3339))
	return first, res, nil
}

// instantsOf returns, in order, the instants whose wall clock in loc reads
// wall. Candidates come from the offsets in force around it: zone changes
// are far more than a day apart in every zone POSSE can meet.
func instantsOf(wall time.Time, loc *time.Location) []time.Time {
	naive := time.Date(wall.Year(), wall.Month(), wall.Day(), wall.Hour(), wall.Minute(), wall.Second(), 0, time.UTC)
	seen := map[int]bool{}
	var out []time.Time
	for _, d := range []time.Duration{-48 * time.Hour, -24 * time.Hour, -12 * time.Hour, 0, 12 * time.Hour, 24 * time.Hour, 48 * time.Hour} {
		_, off := naive.Add(d).In(loc).Zone()
		if seen[off] {
			continue
		}
		seen[off] = true
		cand := naive.Add(-time.Duration(off) * time.Second)
		if _, o := cand.In(loc).Zone(); o != off {
			continue
		}
		if cand.In(loc).Format(wallLayout) == naive.Format(wallLayout) {
			out = append(out, cand.UTC())
		}
	}
	for i := 1; i < len(out); i++ { // at most a handful: insertion sort
		for j := i; j > 0 && out[j].Before(out[j-1]); j-- {
			out[j], out[j-1] = out[j-1], out[j]
		}
	}
	return out
}

// gapAround returns the wall clock just before and just after the zone
// change that skips wall ("02:00", "03:00").
func gapAround(wall time.Time, loc *time.Location) (string, string, bool) {
	naive := time.Date(wall.Year(), wall.Month(), wall.Day(), wall.Hour(), wall.Minute(), wall.Second(), 0, time.UTC)
	// Read with the offset in force a day before, the wall time maps to an
	// instant after the change; that zone period starts at the change.
	_, before := naive.Add(-24 * time.Hour).In(loc).Zone()
	after := naive.Add(-time.Duration(before) * time.Second).In(loc)
	start, _ := after.ZoneBounds()
	if start.IsZero() {
		return "", "", false
	}
	return start.In(time.FixedZone("", before)).Format("15:04"), start.In(loc).Format("15:04"), true
}
