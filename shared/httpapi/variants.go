package httpapi

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"hash/fnv"
	"maps"
	"math"
	"net/http"
	"slices"
	"sort"
	"strings"
	"unicode/utf8"

	"github.com/posse-dev/posse/shared/apperr"
	"github.com/posse-dev/posse/shared/compose"
	"github.com/posse-dev/posse/shared/ledger"
	"github.com/posse-dev/posse/shared/platform"
)

// Bounds of A/B variants.
const (
	MinVariants = 2
	MaxVariants = 4
)

// variantSpec is one entry of a request's variants.
type variantSpec struct {
	CustomMessage string            `json:"customMessage"`
	Overrides     map[string]string `json:"overrides"`
}

// variantsPlan is what a request's variants ask for: explicit wordings, or
// count wordings written by the AI router (Input.Variant).
type variantsPlan struct {
	specs []variantSpec
	count int
}

// n is how many variants the plan has; 0 without variants.
func (v variantsPlan) n() int {
	if v.count > 0 {
		return v.count
	}
	return len(v.specs)
}

// checkVariants validates the raw variants field of a dispatch or schedule
// body against the rest of it. Problems name the field.
func (s *Server) checkVariants(raw json.RawMessage, adapt bool, overrides map[string]string, ids []string, ps *problems) variantsPlan {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || string(raw) == "null" {
		return variantsPlan{}
	}
	var vp variantsPlan
	switch raw[0] {
	case '[':
		if err := json.Unmarshal(raw, &vp.specs); err != nil {
			ps.add("variants", "must be a list of 2 to 4 objects with customMessage and/or overrides, or {\"count\": n}")
			return variantsPlan{}
		}
		if n := len(vp.specs); n < MinVariants || n > MaxVariants {
			ps.add("variants", "must hold %d to %d variants, got %d", MinVariants, MaxVariants, n)
			return variantsPlan{}
		}
		seen := map[string]int{}
		for i, v := range vp.specs {
			f := fmt.Sprintf("variants[%d]", i)
			v.CustomMessage = strings.TrimSpace(v.CustomMessage)
			vp.specs[i].CustomMessage = v.CustomMessage
			if v.CustomMessage == "" && len(v.Overrides) == 0 {
				ps.add(f, "needs a customMessage or overrides")
				continue
			}
			if n := utf8.RuneCountInString(v.CustomMessage); n > MaxCustomMessage {
				ps.add(f+".customMessage", "must be at most %d characters, got %d", MaxCustomMessage, n)
			}
			keys := slices.Sorted(maps.Keys(v.Overrides))
			for _, id := range keys {
				text := strings.TrimSpace(v.Overrides[id])
				switch {
				case !slices.Contains(ids, id):
					ps.add(f+".overrides."+id, "names a target that is not in targetIds")
				case text == "":
					ps.add(f+".overrides."+id, "must not be empty")
				case utf8.RuneCountInString(text) > maxOverrideChars:
					ps.add(f+".overrides."+id, "must be at most %d characters", maxOverrideChars)
				}
			}
			canon, _ := json.Marshal(struct {
				C string
				O map[string]string
			}{v.CustomMessage, v.Overrides})
			if j, ok := seen[string(canon)]; ok {
				ps.add(f, "is identical to variants[%d]; variants must differ", j)
				continue
			}
			seen[string(canon)] = i
		}
	case '{':
		var c struct {
			Count *int `json:"count"`
		}
		dec := json.NewDecoder(bytes.NewReader(raw))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&c); err != nil || c.Count == nil {
			ps.add("variants", "must be a list of variants or {\"count\": n}")
			return variantsPlan{}
		}
		vp.count = *c.Count
		switch {
		case vp.count < MinVariants || vp.count > MaxVariants:
			ps.add("variants.count", "must be from %d to %d, got %d", MinVariants, MaxVariants, vp.count)
			return variantsPlan{}
		case !s.d.AIConfigured:
			ps.add("variants.count", "needs an LLM provider to write the variants, and this deployment has none configured")
			return variantsPlan{}
		case !adapt:
			ps.add("variants.count", "needs requestAiAssets: true (the AI router writes each variant)")
			return variantsPlan{}
		}
	default:
		ps.add("variants", "must be a list of variants or {\"count\": n}")
		return variantsPlan{}
	}
	if len(overrides) > 0 {
		ps.add("overrides", "cannot be combined with variants; put overrides in each variant")
	}
	if k := vp.n(); len(ids) < k {
		ps.add("variants", "has %d variants for %d targets; every variant needs at least one target", k, len(ids))
	}
	return vp
}

// assignVariants gives each planned target one variant: the targets in
// (platform, id) order take the variants in turn, from an offset derived
// from the post. Consecutive within each platform, so each platform's
// variants differ in count by at most one; one turn across platforms, so
// every variant gets a target when there are at least as many targets; and
// the same request always gets the same assignment.
func assignVariants(postID string, plans []planned, k int) map[string]int {
	type tp struct {
		p  platform.Name
		id string
	}
	all := make([]tp, 0, len(plans))
	for _, pl := range plans {
		all = append(all, tp{pl.t.Platform, pl.t.ID})
	}
	sort.Slice(all, func(i, j int) bool {
		if all[i].p != all[j].p {
			return all[i].p < all[j].p
		}
		return all[i].id < all[j].id
	})
	h := fnv.New32a()
	_, _ = h.Write([]byte(postID))
	off := int(h.Sum32() % uint32(k))
	out := map[string]int{}
	for i, t := range all {
		out[t.id] = (off + i) % k
	}
	return out
}

// planVariants plans a request with variants: the base plan (targets,
// connections, validation), then each variant's wording for the targets it
// was given, in the order of ids.
func (s *Server) planVariants(ctx context.Context, siteID string, in planInput, vp variantsPlan) ([]planned, problems, error) {
	base, ps, err := s.plan(ctx, siteID, in.post, in.custom, in.ids, in.air)
	if err != nil || len(ps) > 0 {
		return nil, ps, err
	}
	k := vp.n()
	assign := assignVariants(in.post.PostID, base, k)
	if vp.count > 0 {
		// The AI router writes each variant: every target adapts, the
		// first with the default wording.
		for i := range base {
			base[i].variant = ledger.VariantLabel(assign[base[i].t.ID])
			if base[i].ai == nil {
				base[i].ai = &ledger.AIInfo{Source: ledger.AIPending, Settings: base[i].t.AI}
			}
		}
		return base, nil, nil
	}
	byID := map[string]planned{}
	for v, spec := range vp.specs {
		var ids []string
		for _, id := range in.ids {
			if a, ok := assign[id]; ok && a == v {
				ids = append(ids, id)
			}
		}
		if len(ids) == 0 {
			continue
		}
		custom := spec.CustomMessage
		if custom == "" {
			custom = in.custom
		}
		over := map[string]string{}
		for id, text := range spec.Overrides {
			if assign[id] == v {
				over[id] = text
			}
		}
		plans, vps, err := s.plan(ctx, siteID, in.post, custom, ids, aiRequest{adapt: in.air.adapt, overrides: over})
		if err != nil {
			return nil, nil, err
		}
		for _, p := range vps {
			p.Field = fmt.Sprintf("variants[%d].", v) + p.Field
			ps = append(ps, p)
		}
		for _, pl := range plans {
			pl.variant = ledger.VariantLabel(v)
			byID[pl.t.ID] = pl
		}
	}
	if len(ps) > 0 {
		return nil, ps, nil
	}
	out := make([]planned, 0, len(base))
	for _, pl := range base {
		out = append(out, byID[pl.t.ID])
	}
	return out, nil, nil
}

// planInput is a checked request, ready to plan.
type planInput struct {
	post   compose.Post
	custom string
	ids    []string
	air    aiRequest
}

// SignificanceZ is the |z| of a two-sided test at the 95% level.
const SignificanceZ = 1.96

// variantStats are one variant's figures on one platform (or overall).
type variantStats struct {
	Variant    string           `json:"variant"`
	Deliveries int              `json:"deliveries"`
	Read       int              `json:"read"` // deliveries with at least one reading
	Figures    map[string]int64 `json:"figures"`
	// Interactions sums every figure but views.
	Interactions int64 `json:"interactions"`
	// Rate is interactions per view where the platform gives views (basis
	// "views"); null with basis "raw" where it gives neither views nor a
	// follower count (POSSE reads no follower counts).
	Rate  *float64 `json:"rate"`
	Basis string   `json:"basis"`
	// Lift is (rate - the first variant's rate) / the first variant's
	// rate; null for the first variant or without rates.
	Lift *float64 `json:"lift"`
	// Significance compares the variant with the first.
	Significance *significance `json:"significance,omitempty"`
}

// significance is the outcome of comparing a variant's rate with the first
// variant's.
type significance struct {
	Test        string   `json:"test"`
	Z           *float64 `json:"z,omitempty"`
	PValue      *float64 `json:"pValue,omitempty"`
	Significant bool     `json:"significant"`
	Note        string   `json:"note"`
}

type platformVariants struct {
	Platform platform.Name  `json:"platform"`
	Variants []variantStats `json:"variants"`
}

type variantsView struct {
	PostID     string             `json:"postId"`
	Variants   []variantStats     `json:"variants"`
	ByPlatform []platformVariants `json:"byPlatform"`
	Method     string             `json:"method"`
}

func (v *variantStats) add(d ledger.Delivery) {
	v.Deliveries++
	if len(d.MetricsLast) == 0 {
		return
	}
	v.Read++
	for k, n := range d.MetricsLast {
		v.Figures[k] += n
		if k != string(platform.Views) {
			v.Interactions += n
		}
	}
}

// views is the views sum and whether any delivery gave views.
func (v *variantStats) views() (int64, bool) {
	n, ok := v.Figures[string(platform.Views)]
	return n, ok && n > 0
}

func (v *variantStats) finish() {
	if n, ok := v.views(); ok {
		r := float64(v.Interactions) / float64(n)
		v.Rate, v.Basis = &r, "views"
		return
	}
	v.Basis = "raw"
}

// compare fills v's lift and significance against the first variant a: a
// two-proportion z-test of interactions per view (each view an exposure,
// each interaction a success; valid while interactions do not exceed
// views and each side has at least 5 successes and 5 failures).
func (v *variantStats) compare(a *variantStats) {
	const test = "two-proportion z-test on interactions per view, two-sided, 95%"
	if a.Rate == nil || v.Rate == nil {
		v.Significance = &significance{Test: test, Note: "not enough data: the platform gives no views to rate against"}
		return
	}
	if *a.Rate > 0 {
		l := (*v.Rate - *a.Rate) / *a.Rate
		v.Lift = &l
	}
	n1, _ := a.views()
	n2, _ := v.views()
	x1, x2 := a.Interactions, v.Interactions
	if x1 > n1 || x2 > n2 || x1 < 5 || x2 < 5 || n1-x1 < 5 || n2-x2 < 5 {
		v.Significance = &significance{Test: test, Note: "not enough data yet (each side needs at least 5 interactions and 5 views without one)"}
		return
	}
	p1, p2 := float64(x1)/float64(n1), float64(x2)/float64(n2)
	pool := float64(x1+x2) / float64(n1+n2)
	se := math.Sqrt(pool * (1 - pool) * (1/float64(n1) + 1/float64(n2)))
	if se == 0 {
		v.Significance = &significance{Test: test, Note: "not enough data: no variation"}
		return
	}
	z := (p2 - p1) / se
	pv := math.Erfc(math.Abs(z) / math.Sqrt2)
	sig := math.Abs(z) >= SignificanceZ
	note := "the difference is not significant yet"
	if sig {
		note = "the difference is significant at the 95% level"
	}
	v.Significance = &significance{Test: test, Z: &z, PValue: &pv, Significant: sig, Note: note}
}

// postVariants compares the variants of a post of the site per variant and
// platform, from the deliveries' latest readings.
func (s *Server) postVariants(w http.ResponseWriter, r *http.Request, p Principal) error {
	dl, err := s.deliveries()
	if err != nil {
		return err
	}
	postID := r.PathValue("postId")
	ds, err := listAll(r.Context(), dl, p.SiteID, ledger.Filter{PostID: postID})
	if err != nil {
		return err
	}
	overall := map[string]*variantStats{}
	byPlat := map[platform.Name]map[string]*variantStats{}
	get := func(m map[string]*variantStats, v string) *variantStats {
		if m[v] == nil {
			m[v] = &variantStats{Variant: v, Figures: map[string]int64{}}
		}
		return m[v]
	}
	for _, d := range ds {
		if d.Variant == "" {
			continue
		}
		if byPlat[d.Platform] == nil {
			byPlat[d.Platform] = map[string]*variantStats{}
		}
		get(byPlat[d.Platform], d.Variant).add(d)
	}
	if len(byPlat) == 0 {
		return apperr.NotFound("post with variants")
	}
	view := variantsView{PostID: postID, Method: "engagement rate = interactions (every figure but views) / views where the platform gives views, else raw figures; " +
		"lift and significance against variant a; overall rates count only platforms with views"}
	sorted := func(m map[string]*variantStats) []*variantStats {
		out := make([]*variantStats, 0, len(m))
		for _, v := range m {
			out = append(out, v)
		}
		sort.Slice(out, func(i, j int) bool { return out[i].Variant < out[j].Variant })
		return out
	}
	plats := slices.Sorted(maps.Keys(byPlat))
	for _, pn := range plats {
		vs := sorted(byPlat[pn])
		pv := platformVariants{Platform: pn}
		for _, v := range vs {
			v.finish()
			o := get(overall, v.Variant)
			o.Deliveries += v.Deliveries
			o.Read += v.Read
			for k, n := range v.Figures {
				o.Figures[k] += n
			}
			if v.Rate != nil {
				// Overall rates count only platforms that give views.
				o.Interactions += v.Interactions
			}
		}
		for _, v := range vs[1:] {
			if vs[0].Variant == "a" {
				v.compare(vs[0])
			}
		}
		for _, v := range vs {
			pv.Variants = append(pv.Variants, *v)
		}
		view.ByPlatform = append(view.ByPlatform, pv)
	}
	ovs := sorted(overall)
	for _, v := range ovs {
		v.finish()
	}
	for _, v := range ovs[1:] {
		if ovs[0].Variant == "a" {
			v.compare(ovs[0])
		}
	}
	for _, v := range ovs {
		view.Variants = append(view.Variants, *v)
	}
	return writeJSON(w, http.StatusOK, view)
}
