package ledger

import (
	"context"
	"fmt"
	"net/url"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/posse-dev/posse/shared/apperr"
)

// conflict is the error of a change the delivery's state does not allow.
func conflict(code string, d Delivery, format string, args ...any) error {
	e := apperr.Newf(apperr.KindConflict, code, format, args...)
	e.Message = fmt.Sprintf("delivery %s is %s: %s", d.ID, d.State, e.Message)
	return e
}

// operatorEntry appends a history entry for an operator's action.
func (s *Store) operatorEntry(r *record, outcome State, msg string) {
	now := s.now().UTC()
	r.History = append(r.History, Attempt{N: r.Attempts, StartedAt: now, EndedAt: now, Outcome: outcome, Message: msg})
}

// Cancel cancels a delivery that no worker has claimed (queued, scheduled,
// retrying or deferred). Cancelling a cancelled delivery returns it as it
// is; any other state is a conflict.
func (s *Store) Cancel(ctx context.Context, siteID, id string) (Delivery, error) {
	r, err := s.change(ctx, siteID, id, func(r *record) error {
		switch r.State {
		case StateCancelled:
			return errUnchanged
		case StateQueued, StateScheduled, StateRetrying, StateDeferred:
		default:
			return conflict("not_cancellable", r.Delivery, "only a delivery that is not yet being published can be cancelled")
		}
		r.State = StateCancelled
		r.NextAttemptAt, r.QueuedAt, r.WakeAt = nil, nil, nil
		s.operatorEntry(r, StateCancelled, "cancelled")
		return nil
	})
	if err != nil {
		return Delivery{}, fmt.Errorf("cancel delivery %s: %w", id, err)
	}
	return r.Delivery, nil
}

// RequestRetry puts a failed or dead delivery back in the queue, and an
// unknown one only when the operator confirms it was not published. The
// attempt policy starts over (Attempts is reset; History keeps every
// attempt). The caller enqueues the message. A sent delivery, or one still
// in flight, is a conflict.
func (s *Store) RequestRetry(ctx context.Context, siteID, id string, confirmNotPublished bool) (Delivery, error) {
	r, err := s.change(ctx, siteID, id, func(r *record) error {
		switch r.State {
		case StateFailed, StateDead:
		case StateUnknown:
			if !confirmNotPublished {
				return conflict("confirmation_required", r.Delivery,
					`it may have been published; retry only with {"confirm": "not_published"} after checking the platform, or resolve it`)
			}
		case StateSent:
			return conflict("already_sent", r.Delivery, "it was published; a retry would post it twice")
		default:
			return conflict("not_retryable", r.Delivery, "only failed, dead or unknown deliveries can be retried")
		}
		now := s.now().UTC()
		msg := "retry requested"
		if r.State == StateUnknown {
			msg = "retry requested; operator confirmed not published"
		}
		r.State = StateQueued
		r.Attempts = 0
		r.NextAttemptAt, r.WakeAt = nil, nil
		r.QueuedAt, r.DueAt = &now, &now
		s.operatorEntry(r, StateQueued, msg)
		return nil
	})
	if err != nil {
		return Delivery{}, fmt.Errorf("retry delivery %s: %w", id, err)
	}
	return r.Delivery, nil
}

// Resolve records that an unknown delivery was found published by an
// operator, at platformURL (an absolute http(s) URL) with the platform's
// post id when known. Resolving a sent delivery with the same URL returns
// it as it is.
func (s *Store) Resolve(ctx context.Context, siteID, id, platformURL, platformPostID string) (Delivery, error) {
	u, err := url.Parse(platformURL)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return Delivery{}, apperr.Invalid("platformUrl", "must be an absolute http(s) URL")
	}
	r, err := s.change(ctx, siteID, id, func(r *record) error {
		switch {
		case r.State == StateSent && r.PlatformURL == platformURL:
			return errUnchanged
		case r.State != StateUnknown:
			return conflict("not_unknown", r.Delivery, "only an unknown delivery can be resolved")
		}
		now := s.now().UTC()
		r.State = StateSent
		r.PlatformURL = platformURL
		if platformPostID != "" {
			r.PlatformPostID = platformPostID
		}
		r.SentAt = &now
		r.NextAttemptAt, r.WakeAt, r.QueuedAt = nil, nil, nil
		s.operatorEntry(r, StateSent, "resolved: operator found it published")
		return nil
	})
	if err != nil {
		return Delivery{}, fmt.Errorf("resolve delivery %s: %w", id, err)
	}
	return r.Delivery, nil
}

// CountByState counts a site's deliveries by state. Every state is present
// in the map, with 0 when none. It reads the site's listing index (only the
// state attribute), so its cost grows with the site's deliveries.
func (s *Store) CountByState(ctx context.Context, siteID string) (map[State]int, error) {
	counts := make(map[State]int, len(States))
	for _, st := range States {
		counts[st] = 0
	}
	p := dynamodb.NewQueryPaginator(s.db, &dynamodb.QueryInput{
		TableName:                 &s.table,
		IndexName:                 aws.String("GSI1"),
		KeyConditionExpression:    aws.String("GSI1PK = :p"),
		ProjectionExpression:      aws.String("#s"),
		ExpressionAttributeNames:  map[string]string{"#s": "state"},
		ExpressionAttributeValues: map[string]types.AttributeValue{":p": str(listPartition(siteID))},
	})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return nil, fmt.Errorf("count deliveries of %s: %w", siteID, err)
		}
		for _, it := range page.Items {
			if v, ok := it["state"].(*types.AttributeValueMemberS); ok {
				counts[State(strings.TrimSpace(v.Value))]++
			}
		}
	}
	return counts, nil
}
