package dispatch

import (
	"context"
	"fmt"

	"github.com/posse-dev/posse/shared/ai"
	"github.com/posse-dev/posse/shared/compose"
	"github.com/posse-dev/posse/shared/ledger"
	"github.com/posse-dev/posse/shared/platform"
	"github.com/posse-dev/posse/shared/site"
	"github.com/posse-dev/posse/shared/stats"
)

// adapter writes a delivery's text with an LLM: shared/ai.Router.
type adapter interface {
	Adapt(ctx context.Context, in ai.Input) (ai.Result, error)
}

// snapshotReader reads the post a delivery was dispatched from:
// shared/compose.Snapshots.
type snapshotReader interface {
	Get(ctx context.Context, siteID, postID, revision string) (compose.Snapshot, error)
}

// siteReader reads a site's AI settings: shared/site.Store.
type siteReader interface {
	Get(ctx context.Context, id string) (site.Site, error)
}

// adapt runs the AI adaptation a delivery asked for (its AI source is
// pending) and freezes the result in the ledger before anything is
// published: the text, generated alt texts and how they were written. A
// retry, a redelivery or a redrive finds it frozen and publishes the same
// words without calling an LLM again. Every LLM failure ends in the
// delivery's deterministic text (source fallback); only a failure of our
// own storage is an error, and the attempt is retried.
func (d *Dispatcher) adapt(ctx context.Context, lease *ledger.Lease, pub platform.Publisher) error {
	dl := lease.Delivery()
	info := *dl.AI
	var (
		res  ai.Result
		in   ai.Input
		alts []string
	)
	if d.cfg.AI == nil || d.cfg.Snapshots == nil || d.cfg.Sites == nil {
		res = ai.Result{Text: dl.Text, Source: ledger.AIFallback, Reason: "ai_not_configured"}
	} else {
		snap, err := d.cfg.Snapshots.Get(ctx, dl.SiteID, dl.PostID, dl.Revision)
		if err != nil {
			return fmt.Errorf("adapt delivery %s: %w", dl.ID, err)
		}
		st, err := d.cfg.Sites.Get(ctx, dl.SiteID)
		if err != nil {
			return fmt.Errorf("adapt delivery %s: %w", dl.ID, err)
		}
		post := lease.Post()
		in = ai.InputFor(ai.Request{
			SiteID: dl.SiteID, PostID: dl.PostID, Revision: dl.Revision, DeliveryID: dl.ID, Platform: dl.Platform,
			Limit: compose.LimitOf(pub.Capabilities()), Title: snap.Title, Excerpt: snap.Excerpt, Body: snap.Body,
			Link: dl.Link, Media: dl.Media, Settings: info.Settings, Fallback: dl.Text, Validate: ai.ValidateWith(pub, post),
			BudgetMicros: st.AI.BudgetMicros(d.cfg.AIDefaultBudgetMicros), Chain: st.AI.Providers, Strategy: st.AI.Strategy,
			Variant: ledger.VariantIndex(dl.Variant),
		})
		if res, err = d.cfg.AI.Adapt(ctx, in); err != nil {
			return fmt.Errorf("adapt delivery %s: %w", dl.ID, err)
		}
		alts = make([]string, len(dl.Media))
		for i, img := range in.ImagesNeedingAlt {
			if i < len(res.AltTexts) && img.Index < len(alts) {
				alts[img.Index] = res.AltTexts[i]
			}
		}
	}
	info.Source, info.Provider, info.Model, info.Reason = res.Source, res.Provider, res.Model, res.Reason
	info.CostMicros, info.Estimated, info.Cached, info.BudgetWarning = res.CostMicros, res.Estimated, res.Cached, res.BudgetWarning
	if err := lease.Adapt(ctx, res.Text, alts, info); err != nil {
		return err
	}
	if ev, ok := lease.AdaptEvent(); ok && d.cfg.Events != nil {
		// Recorded with the freeze; the sweep sends it if this fails.
		if err := d.cfg.Events.Publish(ctx, ev.SiteID, ev.ID); err != nil {
			d.log.WarnContext(ctx, "publish event", "event_id", ev.ID, "err", logErr(err))
		}
	}
	d.log.InfoContext(ctx, "delivery adapted", "delivery_id", dl.ID, "platform", string(dl.Platform), "ai_source", res.Source,
		"provider", res.Provider, "model", res.Model, "cost_micros", res.CostMicros, "cached", res.Cached, "reason", res.Reason,
		"text_chars", len([]rune(res.Text)))
	if res.CostMicros > 0 {
		d.record(ctx, dl, d.cfg.Now(), stats.Event{AICostMicros: res.CostMicros})
	}
	return nil
}
