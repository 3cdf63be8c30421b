package httpapi

import (
	"context"
	"fmt"
	"net/http"
	"time"

	"github.com/posse-dev/posse/shared/apperr"
	"github.com/posse-dev/posse/shared/stats"
)

// analyticsQuery reads a site's daily counters (shared/stats.Store).
type analyticsQuery interface {
	Query(ctx context.Context, siteID string, from, to time.Time) (stats.Report, error)
}

// defaultAnalyticsDays is the range of GET /v1/analytics without from.
const defaultAnalyticsDays = 30

// addAnalyticsRoutes registers GET /v1/analytics.
func (s *Server) addAnalyticsRoutes() {
	s.add("GET", "/v1/analytics", SiteKey, s.analytics)
}

// queryDate parses a YYYY-MM-DD date (a UTC day) from query parameter name.
func queryDate(r *http.Request, name string) (time.Time, bool, error) {
	v := r.URL.Query().Get(name)
	if v == "" {
		return time.Time{}, false, nil
	}
	t, err := time.Parse(stats.DateLayout, v)
	if err != nil {
		return time.Time{}, false, apperr.Invalid(name, "must be a date as YYYY-MM-DD (a UTC day)")
	}
	return t, true, nil
}

// dayRange reads the query's from and to (UTC days, both included):
// without to, today; without from, the 30 days ending with to.
func dayRange(r *http.Request, now time.Time) (from, to time.Time, err error) {
	to, hasTo, err := queryDate(r, "to")
	if err != nil {
		return from, to, err
	}
	from, hasFrom, err := queryDate(r, "from")
	if err != nil {
		return from, to, err
	}
	if !hasTo {
		y, m, d := now.UTC().Date()
		to = time.Date(y, m, d, 0, 0, 0, 0, time.UTC)
	}
	if !hasFrom {
		from = to.AddDate(0, 0, -(defaultAnalyticsDays - 1))
	}
	if to.Before(from) {
		return from, to, apperr.Invalid("to", "must not be before from")
	}
	if days := int(to.Sub(from)/(24*time.Hour)) + 1; days > stats.MaxDays {
		return from, to, apperr.Invalid("from", fmt.Sprintf("the range spans %d days; at most %d", days, stats.MaxDays))
	}
	return from, to, nil
}

// analytics answers the site's counters from the UTC day from to the UTC
// day to, both included: summary, byPlatform and a timeline of every day.
// Without to, today; without from, the 30 days ending with to.
func (s *Server) analytics(w http.ResponseWriter, r *http.Request, p Principal) error {
	if s.d.Analytics == nil {
		return errNotConfigured("analytics")
	}
	from, to, err := dayRange(r, s.d.Now())
	if err != nil {
		return err
	}
	rep, err := s.d.Analytics.Query(r.Context(), p.SiteID, from, to)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, rep)
}
