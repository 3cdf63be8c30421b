package ledger

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/posse-dev/posse/shared/apperr"
)

// Companion is an item written in the same transaction as new deliveries
// (a post snapshot, an idempotency record, an audit entry): all of them
// are written, or none.
type Companion struct {
	// Put is the item and its condition; an empty TableName is the
	// ledger's table.
	Put types.Put
	// KeepExisting drops the item when its condition fails (an item with
	// its key exists and is kept, as a revision's first snapshot is) and
	// writes the rest; otherwise a failed condition stops the creation
	// with a *CompanionConflict.
	KeepExisting bool
}

// CompanionConflict reports that the condition of companion Index failed
// (an idempotency key already held): nothing was written.
type CompanionConflict struct{ Index int }

func (e *CompanionConflict) Error() string {
	return fmt.Sprintf("create deliveries: the condition of companion item %d failed", e.Index)
}

// MaxCreateWith is the most deliveries and companions CreateWith writes:
// DynamoDB's TransactWriteItems limit.
const MaxCreateWith = transactLimit

// CreateWith creates one delivery per input, like CreateAll, and writes
// the companions companions(out, created) returns in the same
// TransactWriteItems: on the happy path (no delivery existed) that is the
// only call it makes (a PutItem for one delivery without companions). A delivery that exists is read and returned as it
// is (created false), and companions is asked again with the answer. The
// delivery items are exactly those CreateAll writes.
func (s *Store) CreateWith(ctx context.Context, ds []NewDelivery, companions func(out []Delivery, created []bool) ([]Companion, error)) ([]Delivery, []bool, error) {
	var ps []apperr.Problem
	for i, n := range ds {
		ps = append(ps, n.validate(i)...)
	}
	if len(ps) > 0 {
		return nil, nil, apperr.InvalidProblems(ps)
	}
	ids := make([]string, len(ds))
	for i, n := range ds {
		ids[i] = DeliveryID(n.SiteID, n.PostID, n.Revision, n.TargetID)
	}
	existing := map[string]Delivery{}
	kept := map[int]bool{} // companions dropped: their item exists
	const tries = 4
	for try := range tries {
		now := s.now().UTC()
		fresh := map[string]record{}
		var order []string
		out := make([]Delivery, len(ds))
		created := make([]bool, len(ds))
		for i, n := range ds {
			if d, ok := existing[ids[i]]; ok {
				out[i] = d
				continue
			}
			if r, ok := fresh[ids[i]]; ok {
				out[i] = r.Delivery
				continue
			}
			fresh[ids[i]] = newRecord(ids[i], n, now)
			order = append(order, ids[i])
			out[i], created[i] = fresh[ids[i]].Delivery, true
		}
		cs, err := companions(out, created)
		if err != nil {
			return nil, nil, err
		}
		var items []types.TransactWriteItem
		var index []int // companion index of items[i]; -1 for a delivery
		for i, c := range cs {
			if kept[i] {
				continue
			}
			put := c.Put
			if put.TableName == nil {
				put.TableName = &s.table
			}
			items = append(items, types.TransactWriteItem{Put: &put})
			index = append(index, i)
		}
		for _, id := range order {
			it, err := fresh[id].item()
			if err != nil {
				return nil, nil, err
			}
			items = append(items, types.TransactWriteItem{Put: &types.Put{
				TableName: &s.table, Item: it, ConditionExpression: aws.String("attribute_not_exists(PK)"),
			}})
			index = append(index, -1)
		}
		if len(items) > transactLimit {
			return nil, nil, fmt.Errorf("create deliveries: %d items, over TransactWriteItems' %d", len(items), transactLimit)
		}
		if len(items) == 0 {
			return out, created, nil
		}
		if len(items) == 1 && index[0] == -1 {
			// A single delivery needs no transaction (and costs half).
			put := items[0].Put
			_, err := s.db.PutItem(ctx, &dynamodb.PutItemInput{TableName: put.TableName, Item: put.Item, ConditionExpression: put.ConditionExpression})
			var ccf *types.ConditionalCheckFailedException
			switch {
			case err == nil:
				return out, created, nil
			case errors.As(err, &ccf):
				if err := s.readExisting(ctx, ds, ids, order[0], existing); err != nil {
					return nil, nil, err
				}
				continue
			default:
				return nil, nil, fmt.Errorf("put delivery: %w", err)
			}
		}
		_, err = s.db.TransactWriteItems(ctx, &dynamodb.TransactWriteItemsInput{TransactItems: items})
		if err == nil {
			return out, created, nil
		}
		var tce *types.TransactionCanceledException
		if !errors.As(err, &tce) {
			return nil, nil, fmt.Errorf("create %d deliveries: %w", len(order), err)
		}
		if len(tce.CancellationReasons) != len(items) {
			// Without reasons: read the deliveries (one that exists is
			// then left out); at the second such failure, keep the
			// existing companions too; at the third, report a conflict.
			for _, id := range order {
				if err := s.readExisting(ctx, ds, ids, id, existing); err != nil {
					return nil, nil, err
				}
			}
			for i, c := range cs {
				switch {
				case try >= 1 && c.KeepExisting:
					kept[i] = true
				case try >= 2:
					return nil, nil, &CompanionConflict{Index: i}
				}
			}
			continue
		}
		conflict := false
		for i, r := range tce.CancellationReasons {
			switch aws.ToString(r.Code) {
			case "ConditionalCheckFailed":
				switch {
				case index[i] >= 0 && cs[index[i]].KeepExisting:
					kept[index[i]] = true
				case index[i] >= 0:
					return nil, nil, &CompanionConflict{Index: index[i]}
				default:
					if err := s.readExisting(ctx, ds, ids, order[i-(len(items)-len(order))], existing); err != nil {
						return nil, nil, err
					}
				}
			case "TransactionConflict":
				conflict = true
			}
		}
		if conflict {
			if err := pause(ctx, time.Duration(10*(try+1))*time.Millisecond); err != nil {
				return nil, nil, fmt.Errorf("create deliveries: %w", err)
			}
		}
	}
	return nil, nil, apperr.New(apperr.KindConflict, "concurrent_dispatch", "the same deliveries are being created concurrently; try again")
}

// readExisting reads delivery id (of ds) into existing; one deleted in
// between is left out and created again.
func (s *Store) readExisting(ctx context.Context, ds []NewDelivery, ids []string, id string, existing map[string]Delivery) error {
	for i := range ds {
		if ids[i] != id {
			continue
		}
		r, err := s.get(ctx, ds[i].SiteID, id)
		switch {
		case apperr.Is(err, apperr.KindNotFound):
		case err != nil:
			return fmt.Errorf("create deliveries: %w", err)
		default:
			existing[id] = r.Delivery
		}
		return nil
	}
	return nil
}

func pause(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
