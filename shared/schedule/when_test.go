package schedule

import (
	"strings"
	"testing"
	"time"
	_ "time/tzdata" // the same zone data in every test environment

	"github.com/posse-dev/posse/shared/apperr"
)

func TestResolve(t *testing.T) {
	t.Parallel()
	now := time.Date(2027, 1, 10, 12, 0, 0, 0, time.UTC)
	for _, c := range []struct {
		name         string
		req          Request
		want         string // the chosen instant, RFC 3339 in UTC
		zone         string
		ambiguous    bool
		other        string // the occurrence not chosen, when ambiguous
		kind         apperr.Kind
		code, detail string // expected error code and a part of its message
	}{
		{name: "offset", req: Request{ScheduledFor: "2027-03-01T09:30:00+01:00", DefaultZone: "Europe/Berlin"}, want: "2027-03-01T08:30:00Z", zone: "Europe/Berlin"},
		{name: "offset keeps its instant in another zone", req: Request{ScheduledFor: "2027-03-01T09:30:00Z", Timezone: "America/New_York", DefaultZone: "Europe/Berlin"}, want: "2027-03-01T09:30:00Z", zone: "America/New_York"},
		{name: "fractions dropped", req: Request{ScheduledFor: "2027-03-01T09:30:00.987+01:00", DefaultZone: "UTC"}, want: "2027-03-01T08:30:00Z", zone: "UTC"},
		{name: "local in site zone", req: Request{ScheduledFor: "2027-03-01T09:30:00", DefaultZone: "Europe/Berlin"}, want: "2027-03-01T08:30:00Z", zone: "Europe/Berlin"},
		{name: "local without seconds", req: Request{ScheduledFor: "2027-03-01T09:30", DefaultZone: "Europe/Berlin"}, want: "2027-03-01T08:30:00Z", zone: "Europe/Berlin"},
		{name: "local in given zone", req: Request{ScheduledFor: "2027-03-01T09:30:00", Timezone: "Asia/Kolkata", DefaultZone: "Europe/Berlin"}, want: "2027-03-01T04:00:00Z", zone: "Asia/Kolkata"},
		{name: "local summer time", req: Request{ScheduledFor: "2027-07-01T09:30:00", DefaultZone: "Europe/Berlin"}, want: "2027-07-01T07:30:00Z", zone: "Europe/Berlin"},

		// Spring forward: the gap.
		{name: "Berlin gap", req: Request{ScheduledFor: "2027-03-28T02:30:00", DefaultZone: "Europe/Berlin"},
			kind: apperr.KindUnprocessable, code: "nonexistent_local_time", detail: "2027-03-28T02:30:00 does not exist in Europe/Berlin: on 2027-03-28 the clocks jump from 02:00 to 03:00"},
		{name: "Berlin just before the gap", req: Request{ScheduledFor: "2027-03-28T01:59:59", DefaultZone: "Europe/Berlin"}, want: "2027-03-28T00:59:59Z", zone: "Europe/Berlin"},
		{name: "Berlin just after the gap", req: Request{ScheduledFor: "2027-03-28T03:00:00", DefaultZone: "Europe/Berlin"}, want: "2027-03-28T01:00:00Z", zone: "Europe/Berlin"},
		{name: "New York gap", req: Request{ScheduledFor: "2027-03-14T02:15", Timezone: "America/New_York", DefaultZone: "UTC"},
			kind: apperr.KindUnprocessable, code: "nonexistent_local_time", detail: "the clocks jump from 02:00 to 03:00"},
		{name: "Sydney gap (October)", req: Request{ScheduledFor: "2027-10-03T02:30:00", Timezone: "Australia/Sydney", DefaultZone: "UTC"},
			kind: apperr.KindUnprocessable, code: "nonexistent_local_time", detail: "from 02:00 to 03:00"},
		{name: "Lord Howe half-hour gap", req: Request{ScheduledFor: "2027-10-03T02:15:00", Timezone: "Australia/Lord_Howe", DefaultZone: "UTC"},
			kind: apperr.KindUnprocessable, code: "nonexistent_local_time", detail: "from 02:00 to 02:30"},
		{name: "Lord Howe after its gap", req: Request{ScheduledFor: "2027-10-03T02:30:00", Timezone: "Australia/Lord_Howe", DefaultZone: "UTC"}, want: "2027-10-02T15:30:00Z", zone: "Australia/Lord_Howe"},

		// Fall back: the overlap resolves to the first occurrence.
		{name: "Berlin overlap", req: Request{ScheduledFor: "2027-10-31T02:30:00", DefaultZone: "Europe/Berlin"},
			want: "2027-10-31T00:30:00Z", zone: "Europe/Berlin", ambiguous: true, other: "2027-10-31T01:30:00Z"},
		{name: "New York overlap", req: Request{ScheduledFor: "2027-11-07T01:30:00", Timezone: "America/New_York", DefaultZone: "UTC"},
			want: "2027-11-07T05:30:00Z", zone: "America/New_York", ambiguous: true, other: "2027-11-07T06:30:00Z"},
		{name: "Sydney overlap (April)", req: Request{ScheduledFor: "2027-04-04T02:30:00", Timezone: "Australia/Sydney", DefaultZone: "UTC"},
			want: "2027-04-03T15:30:00Z", zone: "Australia/Sydney", ambiguous: true, other: "2027-04-03T16:30:00Z"},
		{name: "Lord Howe half-hour overlap", req: Request{ScheduledFor: "2027-04-04T01:45:00", Timezone: "Australia/Lord_Howe", DefaultZone: "UTC"},
			want: "2027-04-03T14:45:00Z", zone: "Australia/Lord_Howe", ambiguous: true, other: "2027-04-03T15:15:00Z"},
		{name: "no DST in Kolkata", req: Request{ScheduledFor: "2027-10-31T02:30:00", Timezone: "Asia/Kolkata", DefaultZone: "UTC"}, want: "2027-10-30T21:00:00Z", zone: "Asia/Kolkata"},

		// Bad input.
		{name: "malformed", req: Request{ScheduledFor: "next tuesday", DefaultZone: "UTC"}, kind: apperr.KindInvalid, code: "invalid_request", detail: "scheduledFor"},
		{name: "date only", req: Request{ScheduledFor: "2027-03-01", DefaultZone: "UTC"}, kind: apperr.KindInvalid, code: "invalid_request", detail: "scheduledFor"},
		{name: "impossible date", req: Request{ScheduledFor: "2027-02-30T10:00:00", DefaultZone: "UTC"}, kind: apperr.KindInvalid, code: "invalid_request", detail: "scheduledFor"},
		{name: "missing", req: Request{DefaultZone: "UTC"}, kind: apperr.KindInvalid, code: "invalid_request", detail: "scheduledFor: is required"},
		{name: "unknown zone", req: Request{ScheduledFor: "2027-03-01T09:30:00", Timezone: "Mars/Olympus_Mons", DefaultZone: "UTC"}, kind: apperr.KindInvalid, code: "invalid_request", detail: "timezone"},
		{name: "Local is not a zone", req: Request{ScheduledFor: "2027-03-01T09:30:00", Timezone: "Local", DefaultZone: "UTC"}, kind: apperr.KindInvalid, code: "invalid_request", detail: "timezone"},
		{name: "past beyond skew", req: Request{ScheduledFor: "2027-01-10T11:58:59Z", DefaultZone: "UTC"}, kind: apperr.KindUnprocessable, code: "scheduled_in_past", detail: "in the past"},
		{name: "past within skew", req: Request{ScheduledFor: "2027-01-10T11:59:30Z", DefaultZone: "UTC"}, want: "2027-01-10T11:59:30Z", zone: "UTC"},
		{name: "too far ahead", req: Request{ScheduledFor: "2030-01-10T12:00:00Z", DefaultZone: "UTC"}, kind: apperr.KindUnprocessable, code: "scheduled_too_far_ahead", detail: "days ahead"},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			w, err := Resolve(c.req, now)
			if c.kind != "" {
				e, ok := apperr.As(err)
				if !ok || e.Kind != c.kind || e.Code != c.code || !strings.Contains(e.Message, c.detail) {
					t.Fatalf("got %v, want %s %s saying %q", err, c.kind, c.code, c.detail)
				}
				if len(e.Problems) == 0 || e.Problems[0].Field != "scheduledFor" && e.Problems[0].Field != "timezone" {
					t.Errorf("problems: got %+v, want the field named", e.Problems)
				}
				return
			}
			if err != nil {
				t.Fatalf("got %v, want %s", err, c.want)
			}
			if got := w.At.Format(time.RFC3339); got != c.want || w.Zone != c.zone {
				t.Errorf("got %s in %s, want %s in %s", got, w.Zone, c.want, c.zone)
			}
			if (w.Resolution != nil) != c.ambiguous {
				t.Fatalf("resolution: got %+v, want ambiguous=%v", w.Resolution, c.ambiguous)
			}
			if c.ambiguous {
				r := w.Resolution
				if !r.Chosen.Equal(w.At) || r.Other.UTC().Format(time.RFC3339) != c.other || !r.Other.After(r.Chosen) {
					t.Errorf("resolution: chose %s (other %s), want %s (other %s)", r.Chosen, r.Other, c.want, c.other)
				}
				if !strings.Contains(r.Note, "occurs twice") || !strings.Contains(r.Note, r.Chosen.Format(time.RFC3339)) {
					t.Errorf("note %q does not say which instant was chosen", r.Note)
				}
			}
		})
	}
}

func TestExpression(t *testing.T) {
	t.Parallel()
	at := func(s string) time.Time {
		v, err := time.Parse(time.RFC3339, s)
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	for _, c := range []struct {
		when       When
		expr, zone string
	}{
		{When{At: at("2027-03-01T08:30:00Z"), Zone: "Europe/Berlin"}, "at(2027-03-01T09:30:00)", "Europe/Berlin"},
		{When{At: at("2027-07-01T07:30:00Z"), Zone: "Europe/Berlin"}, "at(2027-07-01T09:30:00)", "Europe/Berlin"},
		{When{At: at("2027-03-01T08:30:00Z"), Zone: "UTC"}, "at(2027-03-01T08:30:00)", "UTC"},
		// Both occurrences of 02:30 on the fall-back night: written in UTC,
		// so Scheduler cannot fire the other one.
		{When{At: at("2027-10-31T00:30:00Z"), Zone: "Europe/Berlin"}, "at(2027-10-31T00:30:00)", "UTC"},
		{When{At: at("2027-10-31T01:30:00Z"), Zone: "Europe/Berlin"}, "at(2027-10-31T01:30:00)", "UTC"},
		// The hour before and after is unambiguous.
		{When{At: at("2027-10-31T02:30:00Z"), Zone: "Europe/Berlin"}, "at(2027-10-31T03:30:00)", "Europe/Berlin"},
	} {
		expr, zone := Expression(c.when)
		if expr != c.expr || zone != c.zone {
			t.Errorf("Expression(%s in %s): got %s in %s, want %s in %s", c.when.At.Format(time.RFC3339), c.when.Zone, expr, zone, c.expr, c.zone)
		}
	}
}
