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
