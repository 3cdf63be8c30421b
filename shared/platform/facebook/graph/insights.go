package graph

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/posse-dev/posse/shared/apperr"
	"github.com/posse-dev/posse/shared/platform"
)

// Insight maps one insights metric of a media or post object to a common
// figure.
type Insight struct {
	Name   string          // the platform's metric name, e.g. "views"
	Metric platform.Metric // the common name; "" keeps it raw only
}

// InsightNames is the metric parameter of an insights call.
func InsightNames(ins []Insight) string {
	names := make([]string, len(ins))
	for i, in := range ins {
		names[i] = in.Name
	}
	return strings.Join(names, ",")
}

// ParseInsights reads an insights answer {"data":[{"name", "values":
// [{"value"}], "total_value": {"value"}}]} into a reading: a metric the
// answer leaves out stays absent. A metric whose value is not a number
// (some are objects broken down by type) is an error.
func ParseInsights(r *platform.Reading, ins []Insight, body []byte) error {
	var ans struct {
		Data []struct {
			Name   string `json:"name"`
			Values []struct {
				Value json.RawMessage `json:"value"`
			} `json:"values"`
			TotalValue *struct {
				Value json.RawMessage `json:"value"`
			} `json:"total_value"`
		} `json:"data"`
	}
	if err := json.Unmarshal(body, &ans); err != nil {
		return err
	}
	if ans.Data == nil {
		return errors.New("no data")
	}
	want := map[string]platform.Metric{}
	for _, in := range ins {
		want[in.Name] = in.Metric
	}
	for _, d := range ans.Data {
		m, ok := want[d.Name]
		if !ok {
			continue
		}
		var raw json.RawMessage
		switch {
		case len(d.Values) > 0:
			raw = d.Values[len(d.Values)-1].Value
		case d.TotalValue != nil:
			raw = d.TotalValue.Value
		default:
			continue
		}
		v, err := strconv.ParseInt(string(raw), 10, 64)
		if err != nil {
			return errors.New("metric " + d.Name + " is not a whole number")
		}
		r.Set(m, d.Name, &v)
	}
	return nil
}

// ReadGone reports whether err from reading an object says it does not
// exist: HTTP 404, or code 100 with subcode 33 ("does not exist, cannot be
// loaded due to missing permissions").
func ReadGone(err error) bool {
	e, ok := apperr.As(err)
	return ok && (e.HTTPStatus == 404 || e.PlatformCode == "100/33")
}

// ReadPermission reports whether err from an insights read is a missing
// permission: code 10 or 200-299 (which publishing treats as a token to
// reconnect), or HTTP 403.
func ReadPermission(err error) bool {
	e, ok := apperr.As(err)
	if !ok {
		return false
	}
	code, _, _ := strings.Cut(e.PlatformCode, "/")
	n, _ := strconv.Atoi(code)
	return e.HTTPStatus == 403 || n == 10 || (n >= 200 && n <= 299)
}

// ReadInsights reads GET /{id}/insights?metric=… for each id, one call per
// object (Graph insights take one object). An object that does not exist
// gets a reading with Gone set; a missing permission stops the read with
// a "<platform>.missing_scope" error.
func (cl *Client) ReadInsights(ctx context.Context, token string, ids []string, ins []Insight) (map[string]platform.Reading, error) {
	out := map[string]platform.Reading{}
	for _, id := range ids {
		now := cl.Clock.Now()
		var raw json.RawMessage
		err := cl.Do(ctx, Call{Method: http.MethodGet, Path: "/" + url.PathEscape(id) + "/insights",
			Params: url.Values{"metric": {InsightNames(ins)}}, Token: token}, &raw)
		switch {
		case ReadGone(err):
			r := platform.NewReading(id, now)
			r.Gone = true
			out[id] = r
			continue
		case ReadPermission(err):
			return out, platform.MissingScope(err, cl.Platform, cl.Platform+" refuses to read insights with this token: reconnect with the insights permissions")
		case err != nil:
			return out, err
		}
		r := platform.NewReading(id, now)
		if err := ParseInsights(&r, ins, raw); err != nil {
			return out, cl.Unexpected(http.StatusOK, raw, false, err)
		}
		out[id] = r
	}
	return out, nil
}
