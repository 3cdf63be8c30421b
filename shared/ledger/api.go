package ledger

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/posse-dev/posse/shared/apperr"
)

// validate checks a NewDelivery; the API validates its input before, so a
// problem here is a caller bug reported as invalid.
func (n NewDelivery) validate(i int) []apperr.Problem {
	var ps []apperr.Problem
	field := func(name string) string { return fmt.Sprintf("deliveries[%d].%s", i, name) }
	for name, v := range map[string]string{"siteId": n.SiteID, "postId": n.PostID, "targetId": n.TargetID, "connectionId": n.ConnectionID} {
		if v == "" {
			ps = append(ps, apperr.Problem{Field: field(name), Message: "is required"})
		}
	}
	if !n.Platform.Valid() {
		ps = append(ps, apperr.Problem{Field: field("platform"), Message: fmt.Sprintf("%q is not a supported platform", n.Platform)})
	}
	if n.State != "" && n.State != StateQueued && n.State != StateScheduled {
		ps = append(ps, apperr.Problem{Field: field("state"), Message: "must be queued or scheduled"})
	}
	if n.RateLimitPerHour < 0 {
		ps = append(ps, apperr.Problem{Field: field("rateLimitPerHour"), Message: "must not be negative"})
	}
	slices.SortFunc(ps, func(a, b apperr.Problem) int { return strings.Compare(a.Field, b.Field) })
	return ps
}

// CreateAll creates one delivery per input, in the order given. It is
// idempotent: a delivery that already exists (same site, post, revision and
// target) is returned as it is, with created false. The new deliveries of
// one call are written in one transaction (in chunks of 100 beyond that), so
// a failed call leaves none of a chunk visible; deliveries of an earlier
// chunk stay queued and the sweep enqueues them if the caller cannot.
func (s *Store) CreateAll(ctx context.Context, ds []NewDelivery) (out []Delivery, created []bool, err error) {
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
	const tries = 3
	for range tries {
		existing := make(map[string]Delivery, len(ds))
		for i, n := range ds {
			if _, seen := existing[ids[i]]; seen {
				continue
			}
			r, err := s.get(ctx, n.SiteID, ids[i])
			switch {
			case apperr.Is(err, apperr.KindNotFound):
			case err != nil:
				return nil, nil, fmt.Errorf("create deliveries: %w", err)
			default:
				existing[ids[i]] = r.Delivery
			}
		}
		now := s.now().UTC()
		fresh := make(map[string]record)
		var order []string
		for i, n := range ds {
			if _, ok := existing[ids[i]]; ok {
				continue
			}
			if _, ok := fresh[ids[i]]; ok {
				continue
			}
			fresh[ids[i]] = newRecord(ids[i], n, now)
			order = append(order, ids[i])
		}
		err := s.insert(ctx, fresh, order)
		if errors.Is(err, errStale) {
			continue // another caller created one of them: read again
		}
		if err != nil {
			return nil, nil, fmt.Errorf("create deliveries: %w", err)
		}
		out = make([]Delivery, len(ds))
		created = make([]bool, len(ds))
		first := make(map[string]bool)
		for i := range ds {
			if d, ok := existing[ids[i]]; ok {
				out[i] = d
				continue
			}
			out[i] = fresh[ids[i]].Delivery
			created[i] = !first[ids[i]]
			first[ids[i]] = true
		}
		return out, created, nil
	}
	return nil, nil, apperr.New(apperr.KindConflict, "concurrent_dispatch", "the same deliveries are being created concurrently; try again")
}

func newRecord(id string, n NewDelivery, now time.Time) record {
	st := n.State
	if st == "" {
		st = StateQueued
	}
	r := record{Delivery: Delivery{
		ID: id, SiteID: n.SiteID, PostID: n.PostID, Revision: n.Revision, TargetID: n.TargetID,
		ConnectionID: n.ConnectionID, Platform: n.Platform, State: st,
		Text: n.Text, Link: n.Link, Title: n.Title,
		Media: slices.Clone(n.Media), Options: maps.Clone(n.Options), RateLimitPerHour: n.RateLimitPerHour,
		ScheduleID: n.ScheduleID, Variant: n.Variant, CreatedAt: now, UpdatedAt: now,
	}, Version: 1}
	if n.AI != nil {
		info := *n.AI
		r.AI = &info
	}
	if st == StateQueued {
		r.QueuedAt, r.DueAt = &now, &now
	}
	return r
}

// insert writes fresh records (in order) in transactions of at most 100,
// each item conditional on not existing. errStale means one existed.
func (s *Store) insert(ctx context.Context, fresh map[string]record, order []string) error {
	for start := 0; start < len(order); start += transactLimit {
		end := min(start+transactLimit, len(order))
		items := make([]types.TransactWriteItem, 0, end-start)
		for _, id := range order[start:end] {
			it, err := fresh[id].item()
			if err != nil {
				return err
			}
			items = append(items, types.TransactWriteItem{Put: &types.Put{
				TableName: &s.table, Item: it, ConditionExpression: aws.String("attribute_not_exists(PK)"),
			}})
		}
		if len(items) == 1 {
			// A single item needs no transaction (and costs half).
			_, err := s.db.PutItem(ctx, &dynamodb.PutItemInput{TableName: &s.table, Item: items[0].Put.Item,
				ConditionExpression: items[0].Put.ConditionExpression})
			var ccf *types.ConditionalCheckFailedException
			if errors.As(err, &ccf) {
				return errStale
			}
			if err != nil {
				return fmt.Errorf("put delivery: %w", err)
			}
			continue
		}
		_, err := s.db.TransactWriteItems(ctx, &dynamodb.TransactWriteItemsInput{TransactItems: items})
		var tce *types.TransactionCanceledException
		if errors.As(err, &tce) && conditionFailed(tce) {
			return errStale
		}
		if err != nil {
			return fmt.Errorf("put %d deliveries: %w", len(items), err)
		}
	}
	return nil
}

// conditionFailed reports whether a cancelled transaction failed a
// condition (rather than conflicting with another transaction). Without
// reasons it assumes a condition, which only makes the caller read again.
func conditionFailed(e *types.TransactionCanceledException) bool {
	if len(e.CancellationReasons) == 0 {
		return true
	}
	for _, r := range e.CancellationReasons {
		if aws.ToString(r.Code) == "ConditionalCheckFailed" {
			return true
		}
	}
	return false
}

// Get returns a site's delivery; another site's is not found.
func (s *Store) Get(ctx context.Context, siteID, id string) (Delivery, error) {
	r, err := s.get(ctx, siteID, id)
	if err != nil {
		return Delivery{}, err
	}
	return r.Delivery, nil
}

// listCursor is the decoded form of List's cursor: the keys of the last
// delivery returned.
type listCursor struct {
	PK     string `json:"p"`
	SK     string `json:"s"`
	GSI1PK string `json:"gp"`
	GSI1SK string `json:"gs"`
}

func encodeListCursor(r record) string {
	b, _ := json.Marshal(listCursor{PK: pk(r.SiteID), SK: sk(r.ID), GSI1PK: listPartition(r.SiteID),
		GSI1SK: sortable(r.CreatedAt) + "#" + r.ID})
	return base64.RawURLEncoding.EncodeToString(b)
}

func decodeListCursor(c, siteID string) (map[string]types.AttributeValue, error) {
	bad := apperr.Invalid("cursor", "is not a cursor this API returned")
	b, err := base64.RawURLEncoding.DecodeString(c)
	if err != nil {
		return nil, bad
	}
	var lc listCursor
	if err := json.Unmarshal(b, &lc); err != nil || lc.GSI1PK != listPartition(siteID) || lc.PK != pk(siteID) ||
		!strings.HasPrefix(lc.SK, "DLV#") || lc.GSI1SK == "" {
		return nil, bad
	}
	return map[string]types.AttributeValue{"PK": str(lc.PK), "SK": str(lc.SK),
		"GSI1PK": str(lc.GSI1PK), "GSI1SK": str(lc.GSI1SK)}, nil
}

// MaxListLimit is the largest page List returns.
const MaxListLimit = 100

// List returns up to limit of a site's deliveries matching f, newest first,
// after cursor ("" starts at the newest), and the cursor of the next page
// ("" at the end). A cursor is bound to its site.
func (s *Store) List(ctx context.Context, siteID string, f Filter, limit int, cursor string) ([]Delivery, string, error) {
	if limit <= 0 || limit > MaxListLimit {
		limit = MaxListLimit
	}
	if f.State != "" && !f.State.Valid() {
		return nil, "", apperr.Invalid("state", fmt.Sprintf("%q is not a delivery state", f.State))
	}
	if !f.Since.IsZero() && !f.Until.IsZero() && !f.Until.After(f.Since) {
		return nil, "", apperr.Invalid("until", "must be after since")
	}
	names := map[string]string{}
	values := map[string]types.AttributeValue{":p": str(listPartition(siteID))}
	cond := "GSI1PK = :p"
	switch {
	case !f.Since.IsZero() && !f.Until.IsZero():
		cond += " AND GSI1SK BETWEEN :s AND :u"
		values[":s"], values[":u"] = str(sortable(f.Since)), str(sortable(f.Until))
	case !f.Since.IsZero():
		cond += " AND GSI1SK >= :s"
		values[":s"] = str(sortable(f.Since))
	case !f.Until.IsZero():
		cond += " AND GSI1SK < :u"
		values[":u"] = str(sortable(f.Until))
	}
	var filters []string
	add := func(attr, v string) {
		if v == "" {
			return
		}
		names["#"+attr] = attr
		values[":"+attr] = str(v)
		filters = append(filters, "#"+attr+" = :"+attr)
	}
	add("post_id", f.PostID)
	add("target_id", f.TargetID)
	add("state", string(f.State))
	in := &dynamodb.QueryInput{
		TableName:                 &s.table,
		IndexName:                 aws.String("GSI1"),
		KeyConditionExpression:    aws.String(cond),
		ExpressionAttributeValues: values,
		ScanIndexForward:          aws.Bool(false),
	}
	if len(filters) > 0 {
		in.FilterExpression = aws.String(strings.Join(filters, " AND "))
		in.ExpressionAttributeNames = names
	}
	if cursor != "" {
		start, err := decodeListCursor(cursor, siteID)
		if err != nil {
			return nil, "", err
		}
		in.ExclusiveStartKey = start
	}
	var out []record
	for {
		// Filters apply after Limit, so read a little more than needed.
		in.Limit = aws.Int32(int32(limit - len(out) + 1))
		page, err := s.db.Query(ctx, in)
		if err != nil {
			return nil, "", fmt.Errorf("list deliveries of %s: %w", siteID, err)
		}
		for _, it := range page.Items {
			r, err := unmarshalRecord(it)
			if err != nil {
				return nil, "", fmt.Errorf("list deliveries of %s: %w", siteID, err)
			}
			out = append(out, r)
		}
		if len(out) > limit || len(page.LastEvaluatedKey) == 0 {
			break
		}
		in.ExclusiveStartKey = page.LastEvaluatedKey
	}
	next := ""
	if len(out) > limit {
		out = out[:limit]
		next = encodeListCursor(out[limit-1])
	}
	ds := make([]Delivery, len(out))
	for i, r := range out {
		ds[i] = r.Delivery
	}
	return ds, next, nil
}
