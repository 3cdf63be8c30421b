package platformsim

// The engagement read endpoints of every platform. Figures grow
// deterministically with time from the post id: each of a platform's
// fields is weight × rate × elapsed steps / 60, where rate (1-5) comes from
// a hash of the post id and the field, and a step is Options.MetricsStep
// (one second by default) since the post was created. Tests and the local
// stack compute the same numbers with Figures or GET /_sim/metrics.
//
// Reads honour the generic faults (rate_limit with the platform's reset
// headers, expired_token), FaultMissingScope (the platform's missing
// permission answer) and deleted posts (POST /_sim/posts/delete).

import (
	"encoding/json"
	"fmt"
	"hash/fnv"
	"net/http"

	"strings"
	"time"
)

// FaultMissingScope makes the next engagement read answer the platform's
// missing-permission error.
const FaultMissingScope FaultKind = "missing_scope"

// metricField is one figure a platform's read endpoint gives.
type metricField struct {
	Name   string
	Weight int64
}

// metricFields are each platform's figures as its read endpoint names them.
var metricFields = map[string][]metricField{
	xName:     {{"impression_count", 600}, {"like_count", 30}, {"retweet_count", 6}, {"reply_count", 4}, {"quote_count", 2}, {"bookmark_count", 3}},
	liName:    {{"likesSummary.totalLikes", 30}, {"commentsSummary.aggregatedTotalComments", 4}},
	fbName:    {{"post_impressions", 600}, {"post_clicks", 12}, {"post_reactions_like_total", 30}},
	igName:    {{"views", 600}, {"likes", 30}, {"comments", 4}, {"shares", 5}, {"saved", 3}},
	thName:    {{"views", 600}, {"likes", 30}, {"replies", 4}, {"reposts", 6}, {"quotes", 2}, {"shares", 5}},
	ttName:    {{"view_count", 600}, {"like_count", 30}, {"comment_count", 4}, {"share_count", 5}},
	bskyName:  {{"likeCount", 30}, {"repostCount", 6}, {"replyCount", 4}, {"quoteCount", 2}},
	mastoName: {{"favourites_count", 30}, {"reblogs_count", 6}, {"replies_count", 4}},
}

// FigureAt is field's value for post id elapsed steps after it was created.
func FigureAt(id, field string, weight, steps int64) int64 {
	if steps <= 0 {
		return 0
	}
	h := fnv.New32a()
	_, _ = h.Write([]byte(id + "|" + field))
	rate := int64(1 + h.Sum32()%5)
	return weight * rate * steps / 60
}

// step is the figures' time step.
func (s *Server) step() time.Duration {
	if s.opts.MetricsStep > 0 {
		return s.opts.MetricsStep
	}
	return time.Second
}

// Figures are the raw figures of a recorded post at t, by the platform's
// field names; ok is false for an unknown or deleted post.
func (s *Server) Figures(platform, id string, t time.Time) (map[string]int64, bool) {
	p, ok := s.livePost(platform, id)
	if !ok {
		return nil, false
	}
	steps := int64(t.Sub(p.CreatedAt) / s.step())
	out := map[string]int64{}
	for _, f := range metricFields[platform] {
		out[f.Name] = FigureAt(p.ID, f.Name, f.Weight, steps)
	}
	return out, true
}

// SeedPost records a post as if it had been published (tests of the read
// endpoints); CreatedAt defaults to the simulator's now.
func (s *Server) SeedPost(p Post) Post { return s.record(p) }

// DeletePost marks a recorded post deleted: reads answer as the platform
// does for a deleted post. It reports whether the post was known.
func (s *Server) DeletePost(platform, id string) bool {
	if _, ok := s.livePost(platform, id); !ok {
		return false
	}
	s.with(func(st map[string]any) { st["deleted|"+platform+"|"+id] = true })
	return true
}

// livePost returns the recorded post unless it was deleted.
func (s *Server) livePost(platform, id string) (Post, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.state["deleted|"+platform+"|"+id] == true {
		return Post{}, false
	}
	for _, p := range s.posts {
		if p.Platform == platform && p.ID == id {
			return p, true
		}
	}
	return Post{}, false
}

// figures are a live post's figures now.
func (s *Server) figures(platform, id string) (map[string]int64, bool) {
	return s.Figures(platform, id, s.now())
}

func (s *Server) routesMetrics() {
	s.handle("POST /_sim/posts/delete", s.handleDeletePost)
	s.handle("GET /_sim/metrics", s.handleFigures)
	s.handle("GET /x/2/tweets", s.xReadPosts)
	s.handle("GET /linkedin/rest/socialActions/{urn}", s.liSocialActions)
	s.handle("GET /facebook/{version}/{id}/insights", s.fbInsights)
	s.handle("GET /instagram/{version}/{id}/insights", s.igInsights)
	s.handle("GET /threads/{version}/{id}/insights", s.thInsights)
	s.handle("POST /tiktok/v2/video/query/{$}", s.ttVideoQuery)
	s.handle("GET /bluesky/xrpc/app.bsky.feed.getPosts", s.bskyGetPosts)
}

func init() { platformRoutes = append(platformRoutes, (*Server).routesMetrics) }

// handleDeletePost is POST /_sim/posts/delete {"platform", "id"}.
func (s *Server) handleDeletePost(w http.ResponseWriter, r *http.Request) {
	var in struct{ Platform, ID string }
	if err := json.NewDecoder(r.Body).Decode(&in); err != nil || in.Platform == "" || in.ID == "" {
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": "want {platform, id}"})
		return
	}
	if !s.DeletePost(in.Platform, in.ID) {
		writeJSON(w, http.StatusNotFound, map[string]string{"error": "no such post"})
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// handleFigures is GET /_sim/metrics?platform=&id=&at= (RFC 3339; default
// now): the raw figures a read at that time answers.
func (s *Server) handleFigures(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	at := s.now()
	if v := q.Get("at"); v != "" {
		t, err := time.Parse(time.RFC3339Nano, v)
		if err != nil {
			writeJSON(w, http.StatusBadRequest, map[string]string{"error": "at must be RFC 3339"})
			return
		}
		at = t
	}
	f, ok := s.Figures(q.Get("platform"), q.Get("id"), at)
	if !ok {
		writeJSON(w, http.StatusNotFound, map[string]string{"error": "no such post"})
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"platform": q.Get("platform"), "id": q.Get("id"), "at": at.UTC(), "figures": f})
}

// missingScope consumes a pending FaultMissingScope of platform.
func (s *Server) missingScope(platform string) bool {
	return s.takeFault(platform, FaultMissingScope) != nil
}

// --- X: GET /2/tweets?ids=&tweet.fields=public_metrics ---

func (s *Server) xReadPosts(w http.ResponseWriter, r *http.Request) {
	if s.xAPI(w, r, false) == nil {
		return
	}
	s.count(xName, "read_posts")
	if s.missingScope(xName) {
		xProblem(w, http.StatusForbidden, "Forbidden", "You are not permitted to perform this action: missing scope tweet.read.",
			"https://api.twitter.com/2/problems/oauth2-insufficient-scope")
		return
	}
	ids := strings.Split(r.URL.Query().Get("ids"), ",")
	if r.URL.Query().Get("ids") == "" || len(ids) > 100 {
		xInvalid(w, "The `ids` query parameter value must have between 1 and 100 ids.")
		return
	}
	withMetrics := strings.Contains(r.URL.Query().Get("tweet.fields"), "public_metrics")
	data, errs := []map[string]any{}, []map[string]any{}
	for _, id := range ids {
		f, ok := s.figures(xName, id)
		if !ok {
			errs = append(errs, map[string]any{"value": id, "detail": "Could not find tweet with ids: [" + id + "].",
				"title": "Not Found Error", "resource_type": "tweet", "parameter": "ids", "resource_id": id,
				"type": "https://api.twitter.com/2/problems/resource-not-found"})
			continue
		}
		d := map[string]any{"id": id, "text": "", "edit_history_tweet_ids": []string{id}}
		if withMetrics {
			d["public_metrics"] = f
		}
		data = append(data, d)
	}
	out := map[string]any{}
	if len(data) > 0 {
		out["data"] = data
	}
	if len(errs) > 0 {
		out["errors"] = errs
	}
	writeJSON(w, http.StatusOK, out)
}

// --- LinkedIn: GET /rest/socialActions/{urn} ---

func (s *Server) liSocialActions(w http.ResponseWriter, r *http.Request) {
	if s.liREST(w, r, false) == nil {
		return
	}
	s.count(liName, "read_social_actions")
	if s.missingScope(liName) {
		liError(w, http.StatusForbidden, 100, "ACCESS_DENIED", "Not enough permissions to access: socialActions.GET.20250101")
		return
	}
	urn := r.PathValue("urn")
	f, ok := s.figures(liName, urn)
	if !ok {
		liError(w, http.StatusNotFound, 0, "NOT_FOUND", "Not Found: "+urn)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{
		"target":          urn,
		"likesSummary":    map[string]any{"totalLikes": f["likesSummary.totalLikes"], "likedByCurrentUser": false},
		"commentsSummary": map[string]any{"aggregatedTotalComments": f["commentsSummary.aggregatedTotalComments"], "count": f["commentsSummary.aggregatedTotalComments"]},
	})
}

// --- Facebook, Instagram, Threads: GET /{id}/insights?metric= ---

// graphInsights answers an insights read of id in Meta's shape: one entry
// per requested metric the platform knows, value in values[0].
func (s *Server) graphInsights(w http.ResponseWriter, r *http.Request, platform string, fail func(code, subcode int, msg string)) {
	s.count(platform, "read_insights")
	if s.missingScope(platform) {
		fail(10, 0, "(#10) Application does not have permission for this action")
		return
	}
	id := r.PathValue("id")
	f, ok := s.figures(platform, id)
	if !ok {
		fail(100, 33, "Unsupported get request. Object with ID '"+id+"' does not exist, cannot be loaded due to missing permissions, or does not support this operation.")
		return
	}
	data := []map[string]any{}
	for _, name := range strings.Split(r.URL.Query().Get("metric"), ",") {
		v, known := f[name]
		if !known {
			fail(100, 0, "(#100) The value must be a valid insights metric: "+name)
			return
		}
		data = append(data, map[string]any{"name": name, "period": "lifetime", "title": name,
			"values": []map[string]any{{"value": v}}, "id": id + "/insights/" + name + "/lifetime"})
	}
	writeJSON(w, http.StatusOK, map[string]any{"data": data})
}

func (s *Server) fbInsights(w http.ResponseWriter, r *http.Request) {
	if s.fbCaller(w, r, r.URL.Query(), r.PathValue("id"), false) == nil {
		return
	}
	s.graphInsights(w, r, fbName, func(code, sub int, msg string) {
		graphError(w, graphErr{Code: code, Subcode: sub, Message: msg})
	})
}

func (s *Server) igInsights(w http.ResponseWriter, r *http.Request) {
	if s.igCaller(w, r, r.URL.Query(), false) == nil {
		return
	}
	s.graphInsights(w, r, igName, func(code, sub int, msg string) {
		graphError(w, graphErr{Code: code, Subcode: sub, Message: msg})
	})
}

func (s *Server) thInsights(w http.ResponseWriter, r *http.Request) {
	if s.thAPI(w, r) == nil {
		return
	}
	s.graphInsights(w, r, thName, func(code, sub int, msg string) {
		thErr(w, http.StatusBadRequest, code, sub, msg)
	})
}

// --- TikTok: POST /v2/video/query/?fields= ---

func (s *Server) ttVideoQuery(w http.ResponseWriter, r *http.Request) {
	a := s.ttAPI(w, r)
	if a == nil {
		return
	}
	s.count(ttName, "video_query")
	if s.missingScope(ttName) {
		ttErr(w, http.StatusUnauthorized, "scope_not_authorized", "The user did not authorize the scope required for completing this request.")
		return
	}
	var in struct {
		Filters struct {
			VideoIDs []string `json:"video_ids"`
		} `json:"filters"`
	}
	if !ttJSON(w, r, &in) {
		return
	}
	if len(in.Filters.VideoIDs) == 0 || len(in.Filters.VideoIDs) > 20 {
		ttErr(w, http.StatusBadRequest, "invalid_params", "filters.video_ids must hold 1 to 20 ids")
		return
	}
	fields := strings.Split(r.URL.Query().Get("fields"), ",")
	videos := []map[string]any{}
	for _, id := range in.Filters.VideoIDs {
		p, ok := s.livePost(ttName, id)
		if !ok || p.AccountID != a.ID {
			continue // TikTok answers only for the caller's own public videos
		}
		f, _ := s.figures(ttName, id)
		v := map[string]any{}
		for _, name := range fields {
			switch {
			case name == "id":
				v["id"] = id
			case f != nil && hasKey(f, name):
				v[name] = f[name]
			}
		}
		videos = append(videos, v)
	}
	ttOK(w, map[string]any{"videos": videos, "cursor": 0, "has_more": false})
}

func hasKey(m map[string]int64, k string) bool { _, ok := m[k]; return ok }

// --- Bluesky: GET app.bsky.feed.getPosts?uris= ---

func (s *Server) bskyGetPosts(w http.ResponseWriter, r *http.Request) {
	if f := s.takeFault(bskyName, FaultRateLimit); f != nil {
		reset := s.now().Add(f.resetAfter())
		w.Header().Set("RateLimit-Limit", "3000")
		w.Header().Set("RateLimit-Remaining", "0")
		w.Header().Set("RateLimit-Reset", fmt.Sprint(reset.Unix()))
		bskyErr(w, http.StatusTooManyRequests, "RateLimitExceeded", "Rate Limit Exceeded")
		return
	}
	if s.bskyAuth(w, r) == nil {
		return
	}
	s.count(bskyName, "get_posts")
	uris := r.URL.Query()["uris"]
	if len(uris) == 0 || len(uris) > 25 {
		bskyErr(w, http.StatusBadRequest, "InvalidRequest", "uris must hold 1 to 25 items")
		return
	}
	w.Header().Set("RateLimit-Limit", "3000")
	w.Header().Set("RateLimit-Remaining", "2999")
	w.Header().Set("RateLimit-Reset", fmt.Sprint(s.now().Add(5*time.Minute).Unix()))
	posts := []map[string]any{}
	for _, u := range uris {
		f, ok := s.figures(bskyName, u)
		if !ok {
			continue // the AppView leaves out posts it does not have
		}
		posts = append(posts, map[string]any{"uri": u, "cid": "bafyrei" + strings.ToLower(randHex(8)),
			"likeCount": f["likeCount"], "repostCount": f["repostCount"], "replyCount": f["replyCount"], "quoteCount": f["quoteCount"],
			"indexedAt": s.now().UTC().Format(time.RFC3339)})
	}
	writeJSON(w, http.StatusOK, map[string]any{"posts": posts})
}

// mastoStatusCounts adds a status's counters to its JSON, for
// GET /api/v1/statuses/:id.
func (s *Server) mastoStatusCounts(id string, js map[string]any) map[string]any {
	out := map[string]any{}
	for k, v := range js {
		out[k] = v
	}
	if f, ok := s.figures(mastoName, id); ok {
		for k, v := range f {
			out[k] = v
		}
	}
	return out
}
