// Package schedule is scheduled publishing (architecture §1, §4, §6): a post
// to publish to some targets at a later instant, as one EventBridge
// Scheduler one-time schedule per scheduled post (not per target) whose
// target is the dispatch queue, and the expansion of a fired schedule into
// its deliveries.
//
// The ledger is written first: the schedule item and one delivery per
// target in state scheduled; then the Scheduler schedule is created. If it
// cannot be, both are rolled back (or, when even that fails, the schedule is
// marked failed and the error says so), so no schedule is left that cannot
// fire. A schedule fires with a versioned message (ledger.ScheduleMessage):
// a change of time, targets or text makes a new version and updates the
// Scheduler schedule in place, so a fire of an older version does nothing;
// a fire after a cancel does nothing; a second fire creates nothing new.
//
// Items (one table, architecture §5):
//
//	PK=SITE#<site>  SK=SCHED#<id>   the schedule
//	  GSI1PK=SITE#<site>#SCHED  GSI1SK=<scheduled_for>#<id>      per-site listing, soonest first
//	  GSI2PK=SCHEDULE           GSI2SK=<due>#<site>#<id>         waiting or firing, for the sweep
package schedule

import (
	"strings"
	"time"
)

// State is where a schedule stands. The values are part of the API.
type State string

// Schedule states.
const (
	StateScheduled State = "scheduled" // waiting for its time; can be changed or cancelled
	StateFiring    State = "firing"    // its time came: its deliveries are being queued
	StateFired     State = "fired"     // its deliveries are queued (then published through the ledger)
	StateCancelled State = "cancelled" // cancelled before it fired; its deliveries are cancelled
	StateFailed    State = "failed"    // the Scheduler schedule could not be written and the ledger not rolled back
)

// States lists every state in a stable order.
var States = []State{StateScheduled, StateFiring, StateFired, StateCancelled, StateFailed}

// Valid reports whether s is a known state.
func (s State) Valid() bool {
	for _, v := range States {
		if v == s {
			return true
		}
	}
	return false
}

func statesList() string {
	names := make([]string, len(States))
	for i, s := range States {
		names[i] = string(s)
	}
	return strings.Join(names, ", ")
}

// Ways a schedule reaches the dispatch queue.
const (
	ViaScheduler = "scheduler" // an EventBridge Scheduler one-time schedule
	ViaQueue     = "queue"     // due within seconds: sent to the queue directly, with a delay
)

// Schedule is one post scheduled to some targets.
type Schedule struct {
	ID            string   `dynamodbav:"id"`
	SiteID        string   `dynamodbav:"site_id"`
	PostID        string   `dynamodbav:"post_id"`
	Revision      string   `dynamodbav:"revision"`
	TargetIDs     []string `dynamodbav:"target_ids"`
	CustomMessage string   `dynamodbav:"custom_message"`
	// RequestAIAssets and Overrides are the AI choices of the request,
	// kept so a change of targets composes the same way.
	RequestAIAssets bool              `dynamodbav:"request_ai_assets,omitempty"`
	Overrides       map[string]string `dynamodbav:"overrides,omitempty"`
	// DeliveryIDs are the deliveries it creates, one per target, in the
	// order of TargetIDs.
	DeliveryIDs []string `dynamodbav:"delivery_ids"`
	State       State    `dynamodbav:"state"`
	// Version increases with every change of what or when it fires; the
	// fire message carries it.
	Version int `dynamodbav:"version"`
	// ScheduledFor is the instant it fires, UTC, to the second.
	ScheduledFor time.Time `dynamodbav:"scheduled_for"`
	// Timezone is the IANA zone it is expressed in.
	Timezone string `dynamodbav:"timezone"`
	// Resolution says which instant an ambiguous local time was resolved to.
	Resolution *Resolution `dynamodbav:"resolution,omitempty"`
	// SchedulerName is the EventBridge Scheduler schedule's name in the
	// schedule group (SchedulerName(ID)).
	SchedulerName string `dynamodbav:"scheduler_name"`
	// Via says how it reaches the dispatch queue (ViaScheduler, ViaQueue).
	Via         string     `dynamodbav:"via"`
	CreatedAt   time.Time  `dynamodbav:"created_at"`
	UpdatedAt   time.Time  `dynamodbav:"updated_at"`
	FiredAt     *time.Time `dynamodbav:"fired_at,omitempty"`
	CancelledAt *time.Time `dynamodbav:"cancelled_at,omitempty"`
	// Failure is why a failed schedule failed (client-safe).
	Failure string `dynamodbav:"failure,omitempty"`
}

// When returns the schedule's time.
func (s Schedule) When() When {
	return When{At: s.ScheduledFor, Zone: s.Timezone, Resolution: s.Resolution}
}

// IDPrefix starts every schedule id.
const IDPrefix = "sch_"

// ValidID reports whether id can be a schedule id, before it reaches a key.
func ValidID(id string) bool {
	if !strings.HasPrefix(id, IDPrefix) || len(id) > 64 || len(id) <= len(IDPrefix) {
		return false
	}
	for _, r := range id[len(IDPrefix):] {
		if !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9') {
			return false
		}
	}
	return true
}

// SchedulerName is the name of a schedule's EventBridge Scheduler schedule:
// derived from its id, so every change and the cancel find it again.
func SchedulerName(id string) string { return "post-" + id }
