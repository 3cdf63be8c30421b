package ledger

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/posse-dev/posse/shared/apperr"
)

// Ref names a delivery in one of the sweep's work queues.
type Ref struct {
	SiteID, ID string
}

// Due returns up to limit deliveries of a work queue (QueueLease,
// QueueQueued, QueueWaiting, QueueMetricsFirst, QueueMetrics) whose deadline is before before, oldest first.
// The index is eventually consistent: callers re-read each delivery.
func (s *Store) Due(ctx context.Context, queue string, before time.Time, limit int) ([]Ref, error) {
	switch queue {
	case QueueLease, QueueQueued, QueueWaiting, QueueMetricsFirst, QueueMetrics:
	default:
		return nil, fmt.Errorf("list due deliveries: unknown work queue %q", queue)
	}
	in := &dynamodb.QueryInput{
		TableName:              &s.table,
		IndexName:              aws.String("GSI2"),
		KeyConditionExpression: aws.String("GSI2PK = :q AND GSI2SK < :t"),
		ExpressionAttributeValues: map[string]types.AttributeValue{
			":q": str(queue), ":t": str(sortable(before)),
		},
	}
	var refs []Ref
	for len(refs) < limit {
		in.Limit = aws.Int32(int32(limit - len(refs)))
		out, err := s.db.Query(ctx, in)
		if err != nil {
			return nil, fmt.Errorf("list due deliveries in %s: %w", queue, err)
		}
		for _, it := range out.Items {
			p, _ := it["PK"].(*types.AttributeValueMemberS)
			k, _ := it["SK"].(*types.AttributeValueMemberS)
			if p == nil || k == nil || !strings.HasPrefix(p.Value, "SITE#") || !strings.HasPrefix(k.Value, "DLV#") {
				continue
			}
			refs = append(refs, Ref{SiteID: strings.TrimPrefix(p.Value, "SITE#"), ID: strings.TrimPrefix(k.Value, "DLV#")})
		}
		if len(out.LastEvaluatedKey) == 0 {
			break
		}
		in.ExclusiveStartKey = out.LastEvaluatedKey
	}
	return refs, nil
}

// MarkWake records that a message due at is in flight for a retrying or
// deferred delivery's next attempt, so an early duplicate can be
// acknowledged instead of re-sent. A delivery that moved on is left as it
// is.
func (s *Store) MarkWake(ctx context.Context, siteID, id string, at time.Time) error {
	_, err := s.change(ctx, siteID, id, func(r *record) error {
		if r.State != StateRetrying && r.State != StateDeferred || r.NextAttemptAt == nil || at.Before(*r.NextAttemptAt) {
			return errUnchanged
		}
		at := at.UTC()
		r.WakeAt = &at
		return nil
	})
	if err != nil {
		return fmt.Errorf("mark wake of delivery %s: %w", id, err)
	}
	return nil
}

// Requeued records that the sweep put a message on the queue for a
// delivery that has waited since before notAfter (queued, or retrying or
// deferred and overdue), so it is not re-enqueued again for a while. It
// returns false, writing nothing, when the delivery no longer waits that
// way (claimed, settled, or enqueued since).
func (s *Store) Requeued(ctx context.Context, siteID, id string, notAfter time.Time) (bool, error) {
	moved := false
	_, err := s.change(ctx, siteID, id, func(r *record) error {
		moved = false
		now := s.now().UTC()
		switch {
		case r.State == StateQueued && r.QueuedAt != nil && !r.QueuedAt.After(notAfter):
			r.QueuedAt = &now
		case (r.State == StateRetrying || r.State == StateDeferred) && r.NextAttemptAt != nil && !r.NextAttemptAt.After(notAfter):
			r.NextAttemptAt, r.WakeAt = &now, &now
		default:
			return errUnchanged
		}
		moved = true
		return nil
	})
	if apperr.Is(err, apperr.KindNotFound) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("record requeue of delivery %s: %w", id, err)
	}
	return moved, nil
}
