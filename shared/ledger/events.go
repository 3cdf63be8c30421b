package ledger

import (
	"strconv"
	"time"

	"github.com/posse-dev/posse/shared/event"
)

// outcomeTypes is the event each outcome records; an outcome not listed
// (deferred: a rate limit, not a try) records none.
var outcomeTypes = map[State]event.Type{
	StateSent:     event.DeliverySent,
	StateFailed:   event.DeliveryFailed,
	StateDead:     event.DeliveryDead,
	StateUnknown:  event.DeliveryUnknown,
	StateRetrying: event.DeliveryRetrying,
}

// outcomeEvent returns the event the outcome written as r records at now,
// or nil when it records none. Its id is derived from the delivery, the
// attempt's sequence number and the type: only the write that wins the
// fencing condition records it, once.
func outcomeEvent(r record, now time.Time) (*event.Event, error) {
	typ, ok := outcomeTypes[r.State]
	if !ok {
		return nil, nil
	}
	d := event.DeliveryData{
		DeliveryID: r.ID, PostID: r.PostID, Revision: r.Revision, TargetID: r.TargetID,
		Platform: string(r.Platform), State: string(r.State), Attempts: r.Attempts,
	}
	switch r.State {
	case StateSent:
		d.PlatformPostID, d.URL = r.PlatformPostID, r.PlatformURL
	case StateRetrying:
		d.NextAttemptAt = r.NextAttemptAt
	}
	if r.LastError != nil && r.State != StateSent {
		d.Error = &event.Error{Kind: string(r.LastError.Kind), Code: r.LastError.Code, Message: r.LastError.Message}
		d.ErrorKind = string(r.LastError.Kind)
	}
	ev, err := event.New(r.SiteID, typ, now, d, "delivery", r.ID, strconv.Itoa(r.Seq), string(typ))
	if err != nil {
		return nil, err
	}
	return &ev, nil
}

// budgetEvent returns the ai.budget_* event an adaptation frozen as r
// records, or nil: a warning when its call took the month past 80% of the
// site's budget, exhausted when the budget could not pay for a call. Its id
// is derived from the delivery and the type: one per delivery at most.
func budgetEvent(r record, now time.Time) (*event.Event, error) {
	if r.AI == nil {
		return nil, nil
	}
	var typ event.Type
	switch {
	case r.AI.BudgetWarning:
		typ = event.AIBudgetWarning
	case r.AI.Reason == "budget_exhausted":
		typ = event.AIBudgetExhausted
	default:
		return nil, nil
	}
	ev, err := event.New(r.SiteID, typ, now, event.AIBudgetData{DeliveryID: r.ID, PostID: r.PostID, Platform: string(r.Platform), Reason: r.AI.Reason},
		"delivery", r.ID, string(typ))
	if err != nil {
		return nil, err
	}
	return &ev, nil
}
