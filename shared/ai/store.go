package ai

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/posse-dev/posse/shared/llm"
	"github.com/posse-dev/posse/shared/platform"
)

// How long items are kept (their expires_at).
const (
	genTTL    = 30 * 24 * time.Hour  // a generation
	ledgerTTL = 400 * 24 * time.Hour // a ledger item, a day's counters, a month's budget
	leaseKeep = time.Hour            // a lease that was never finished
)

// Layouts of the keys, in UTC.
const (
	dayLayout   = "2006-01-02"
	monthLayout = "2006-01"
	// callTimeLayout is fixed-width RFC 3339 with nanoseconds: ledger
	// items sort as text in time order.
	callTimeLayout = "2006-01-02T15:04:05.000000000Z"
)

// States of a generation item.
const (
	stateGenerating = "generating"
	stateDone       = "done"
	stateFailed     = "failed" // the chain fell back; the next Adapt tries again
)

// genItem is a generation cache item; State "" means there is none.
type genItem struct {
	State      string
	LeaseID    string
	LeaseUntil time.Time
	Text       string
	AltTexts   []string
	Provider   llm.Name
	Model      string
	CostMicros int64
	Reason     string
}

// callRecord is one LLM call for the cost ledger.
type callRecord struct {
	At                        time.Time
	ID                        string
	SiteID, PostID, Revision  string
	DeliveryID                string
	Platform                  platform.Name
	Provider                  llm.Name
	Model                     string
	InputTokens, OutputTokens int
	CostMicros                int64
	Estimated                 bool
	LatencyMS                 int64
	Outcome                   string // CodeOK or the error code
	PromptSHA256              string
	PromptChars, AnswerChars  int
}

// coolState is a provider's cooldown item.
type coolState struct {
	Failures    int
	WindowStart time.Time
	Until       time.Time
}

// store is what the Router keeps in DynamoDB. dynamoStore implements it;
// the unit tests use an in-memory one.
type store interface {
	// getGen reads a generation item (strongly consistent).
	getGen(ctx context.Context, siteID, key string) (genItem, error)
	// leaseGen takes the lease on a generation that is absent, failed or
	// whose lease ended before now; false means another holds it or it
	// is done.
	leaseGen(ctx context.Context, siteID, key, leaseID string, now, until time.Time) (bool, error)
	// putGen stores a generation, if leaseID still holds the lease.
	putGen(ctx context.Context, siteID, key, leaseID string, it genItem, now time.Time) error
	// failGen marks a generation failed, if leaseID still holds the lease.
	failGen(ctx context.Context, siteID, key, leaseID, reason string, now time.Time) error

	// reserve adds est to the month's committed cost unless that would
	// pass budget; it returns the committed cost after it.
	reserve(ctx context.Context, siteID, month string, est, budget int64, now time.Time) (bool, int64, error)
	// settle adds delta (negative when the call cost less than reserved).
	settle(ctx context.Context, siteID, month string, delta int64) error
	monthCost(ctx context.Context, siteID, month string) (int64, error)

	// recordCall writes the ledger item and adds to the day's counters.
	recordCall(ctx context.Context, c callRecord) error
	usage(ctx context.Context, siteID, fromDay, toDay string) ([]UsageRow, error)

	// cooldowns reads every provider's cooldown item.
	cooldowns(ctx context.Context) (map[llm.Name]coolState, error)
	// failure counts a failure of a provider and starts a cooldown when p
	// says so, or when minUntil is later than now (a provider's
	// Retry-After); it returns the provider's state after it.
	failure(ctx context.Context, name llm.Name, now time.Time, p CooldownPolicy, minUntil time.Time) (coolState, error)
	// success resets a provider's failure count.
	success(ctx context.Context, name llm.Name) error
}

// dynamoAPI is what the Router calls on DynamoDB.
type dynamoAPI interface {
	GetItem(ctx context.Context, in *dynamodb.GetItemInput, opts ...func(*dynamodb.Options)) (*dynamodb.GetItemOutput, error)
	PutItem(ctx context.Context, in *dynamodb.PutItemInput, opts ...func(*dynamodb.Options)) (*dynamodb.PutItemOutput, error)
	UpdateItem(ctx context.Context, in *dynamodb.UpdateItemInput, opts ...func(*dynamodb.Options)) (*dynamodb.UpdateItemOutput, error)
	Query(ctx context.Context, in *dynamodb.QueryInput, opts ...func(*dynamodb.Options)) (*dynamodb.QueryOutput, error)
}

// dynamoStore is the store on the one table.
type dynamoStore struct {
	db    dynamoAPI
	table string
}

func str(s string) types.AttributeValue { return &types.AttributeValueMemberS{Value: s} }

func num(n int64) types.AttributeValue {
	return &types.AttributeValueMemberN{Value: strconv.FormatInt(n, 10)}
}

func boolean(b bool) types.AttributeValue { return &types.AttributeValueMemberBOOL{Value: b} }

func key(pk, sk string) map[string]types.AttributeValue {
	return map[string]types.AttributeValue{"PK": str(pk), "SK": str(sk)}
}

func getStr(it map[string]types.AttributeValue, attr string) string {
	v, _ := it[attr].(*types.AttributeValueMemberS)
	if v == nil {
		return ""
	}
	return v.Value
}

func getNum(it map[string]types.AttributeValue, attr string) int64 {
	v, _ := it[attr].(*types.AttributeValueMemberN)
	if v == nil {
		return 0
	}
	n, _ := strconv.ParseInt(v.Value, 10, 64)
	return n
}

func getTime(it map[string]types.AttributeValue, attr string) time.Time {
	ms := getNum(it, attr)
	if ms == 0 {
		return time.Time{}
	}
	return time.UnixMilli(ms).UTC()
}

func isCCF(err error) bool {
	var ccf *types.ConditionalCheckFailedException
	return errors.As(err, &ccf)
}

func genPK(siteID string) string    { return "SITE#" + siteID + "#AIGEN" }
func budgetPK(siteID string) string { return "SITE#" + siteID + "#AIBUDGET" }
func callPK(siteID string) string   { return "SITE#" + siteID + "#AICALL" }
func usagePK(siteID string) string  { return "SITE#" + siteID + "#AIUSAGE" }

const cooldownPK = "AI#COOLDOWN"

func (s *dynamoStore) getGen(ctx context.Context, siteID, k string) (genItem, error) {
	out, err := s.db.GetItem(ctx, &dynamodb.GetItemInput{TableName: &s.table, Key: key(genPK(siteID), k), ConsistentRead: aws.Bool(true)})
	if err != nil {
		return genItem{}, fmt.Errorf("read AI generation %s: %w", k, err)
	}
	it := out.Item
	if it == nil {
		return genItem{}, nil
	}
	g := genItem{
		State: getStr(it, "state"), LeaseID: getStr(it, "lease_id"), LeaseUntil: getTime(it, "lease_until_ms"),
		Text: getStr(it, "text"), Provider: llm.Name(getStr(it, "provider")), Model: getStr(it, "model"),
		CostMicros: getNum(it, "cost_micros"), Reason: getStr(it, "reason"),
	}
	if l, ok := it["alt_texts"].(*types.AttributeValueMemberL); ok {
		for _, v := range l.Value {
			s, _ := v.(*types.AttributeValueMemberS)
			if s == nil {
				g.AltTexts = append(g.AltTexts, "")
				continue
			}
			g.AltTexts = append(g.AltTexts, s.Value)
		}
	}
	return g, nil
}

func (s *dynamoStore) leaseGen(ctx context.Context, siteID, k, leaseID string, now, until time.Time) (bool, error) {
	item := key(genPK(siteID), k)
	item["state"] = str(stateGenerating)
	item["lease_id"] = str(leaseID)
	item["lease_until_ms"] = num(until.UnixMilli())
	item["expires_at"] = num(until.Add(leaseKeep).Unix())
	_, err := s.db.PutItem(ctx, &dynamodb.PutItemInput{
		TableName:                &s.table,
		Item:                     item,
		ConditionExpression:      aws.String("attribute_not_exists(PK) OR #s = :failed OR (#s = :gen AND lease_until_ms < :now)"),
		ExpressionAttributeNames: map[string]string{"#s": "state"},
		ExpressionAttributeValues: map[string]types.AttributeValue{
			":failed": str(stateFailed), ":gen": str(stateGenerating), ":now": num(now.UnixMilli()),
		},
	})
	if isCCF(err) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("lease AI generation %s: %w", k, err)
	}
	return true, nil
}

func (s *dynamoStore) putGen(ctx context.Context, siteID, k, leaseID string, g genItem, now time.Time) error {
	item := key(genPK(siteID), k)
	alts := make([]types.AttributeValue, len(g.AltTexts))
	for i, a := range g.AltTexts {
		alts[i] = str(a)
	}
	item["state"] = str(stateDone)
	item["text"] = str(g.Text)
	item["alt_texts"] = &types.AttributeValueMemberL{Value: alts}
	item["provider"] = str(string(g.Provider))
	item["model"] = str(g.Model)
	item["cost_micros"] = num(g.CostMicros)
	item["created_at"] = str(now.UTC().Format(time.RFC3339Nano))
	item["expires_at"] = num(now.Add(genTTL).Unix())
	_, err := s.db.PutItem(ctx, &dynamodb.PutItemInput{
		TableName:                 &s.table,
		Item:                      item,
		ConditionExpression:       aws.String("lease_id = :l"),
		ExpressionAttributeValues: map[string]types.AttributeValue{":l": str(leaseID)},
	})
	if isCCF(err) {
		return nil // another instance took the lease over: its result stands
	}
	if err != nil {
		return fmt.Errorf("store AI generation %s: %w", k, err)
	}
	return nil
}

func (s *dynamoStore) failGen(ctx context.Context, siteID, k, leaseID, reason string, now time.Time) error {
	_, err := s.db.UpdateItem(ctx, &dynamodb.UpdateItemInput{
		TableName:                &s.table,
		Key:                      key(genPK(siteID), k),
		UpdateExpression:         aws.String("SET #s = :failed, reason = :r, lease_until_ms = :now"),
		ConditionExpression:      aws.String("lease_id = :l"),
		ExpressionAttributeNames: map[string]string{"#s": "state"},
		ExpressionAttributeValues: map[string]types.AttributeValue{
			":failed": str(stateFailed), ":r": str(reason), ":now": num(now.UnixMilli()), ":l": str(leaseID),
		},
	})
	if err != nil && !isCCF(err) {
		return fmt.Errorf("release AI generation %s: %w", k, err)
	}
	return nil
}

func monthTTL(month string) int64 {
	t, err := time.Parse(monthLayout, month)
	if err != nil {
		t = time.Now()
	}
	return t.AddDate(0, 1, 0).Add(ledgerTTL).Unix()
}

func (s *dynamoStore) reserve(ctx context.Context, siteID, month string, est, budget int64, now time.Time) (bool, int64, error) {
	if est > budget {
		return false, 0, nil
	}
	out, err := s.db.UpdateItem(ctx, &dynamodb.UpdateItemInput{
		TableName:           &s.table,
		Key:                 key(budgetPK(siteID), month),
		UpdateExpression:    aws.String("ADD committed_micros :est SET expires_at = :ttl"),
		ConditionExpression: aws.String("attribute_not_exists(committed_micros) OR committed_micros <= :max"),
		ExpressionAttributeValues: map[string]types.AttributeValue{
			":est": num(est), ":max": num(budget - est), ":ttl": num(monthTTL(month)),
		},
		ReturnValues: types.ReturnValueUpdatedNew,
	})
	if isCCF(err) {
		return false, 0, nil
	}
	if err != nil {
		return false, 0, fmt.Errorf("reserve AI budget of %s for %s: %w", siteID, month, err)
	}
	return true, getNum(out.Attributes, "committed_micros"), nil
}

func (s *dynamoStore) settle(ctx context.Context, siteID, month string, delta int64) error {
	if delta == 0 {
		return nil
	}
	_, err := s.db.UpdateItem(ctx, &dynamodb.UpdateItemInput{
		TableName:                 &s.table,
		Key:                       key(budgetPK(siteID), month),
		UpdateExpression:          aws.String("ADD committed_micros :d"),
		ExpressionAttributeValues: map[string]types.AttributeValue{":d": num(delta)},
	})
	if err != nil {
		return fmt.Errorf("settle AI budget of %s for %s: %w", siteID, month, err)
	}
	return nil
}

func (s *dynamoStore) monthCost(ctx context.Context, siteID, month string) (int64, error) {
	out, err := s.db.GetItem(ctx, &dynamodb.GetItemInput{TableName: &s.table, Key: key(budgetPK(siteID), month), ConsistentRead: aws.Bool(true)})
	if err != nil {
		return 0, fmt.Errorf("read AI cost of %s for %s: %w", siteID, month, err)
	}
	return getNum(out.Item, "committed_micros"), nil
}

// keyPart makes a value safe inside a '#'-separated key.
var keyPart = strings.NewReplacer("%", "%25", "#", "%23")

func (s *dynamoStore) recordCall(ctx context.Context, c callRecord) error {
	at := c.At.UTC()
	item := key(callPK(c.SiteID), at.Format(callTimeLayout)+"#"+c.ID)
	for attr, v := range map[string]string{
		"call_id": c.ID, "site_id": c.SiteID, "post_id": c.PostID, "revision": c.Revision, "delivery_id": c.DeliveryID,
		"platform": string(c.Platform), "provider": string(c.Provider), "model": c.Model, "outcome": c.Outcome,
		"prompt_sha256": c.PromptSHA256, "at": at.Format(time.RFC3339Nano),
	} {
		if v != "" {
			item[attr] = str(v)
		}
	}
	for attr, v := range map[string]int64{
		"input_tokens": int64(c.InputTokens), "output_tokens": int64(c.OutputTokens), "cost_micros": c.CostMicros,
		"latency_ms": c.LatencyMS, "prompt_chars": int64(c.PromptChars), "answer_chars": int64(c.AnswerChars),
		"expires_at": at.Add(ledgerTTL).Unix(),
	} {
		item[attr] = num(v)
	}
	item["estimated"] = boolean(c.Estimated)
	failed := int64(0)
	if c.Outcome != CodeOK {
		failed = 1
	}
	day := at.Format(dayLayout)
	// The two writes are independent: run them side by side.
	var wg sync.WaitGroup
	var putErr, addErr error
	wg.Go(func() {
		_, putErr = s.db.PutItem(ctx, &dynamodb.PutItemInput{TableName: &s.table, Item: item})
	})
	wg.Go(func() {
		_, addErr = s.db.UpdateItem(ctx, &dynamodb.UpdateItemInput{
			TableName:        &s.table,
			Key:              key(usagePK(c.SiteID), day+"#"+string(c.Provider)+"#"+keyPart.Replace(c.Model)),
			UpdateExpression: aws.String("ADD calls :one, failures :f, input_tokens :in, output_tokens :out, cost_micros :c SET expires_at = :ttl"),
			ExpressionAttributeValues: map[string]types.AttributeValue{
				":one": num(1), ":f": num(failed), ":in": num(int64(c.InputTokens)), ":out": num(int64(c.OutputTokens)),
				":c": num(c.CostMicros), ":ttl": num(at.Add(ledgerTTL).Unix()),
			},
		})
	})
	wg.Wait()
	if putErr != nil {
		putErr = fmt.Errorf("write AI call ledger of %s: %w", c.SiteID, putErr)
	}
	if addErr != nil {
		addErr = fmt.Errorf("add AI usage of %s on %s: %w", c.SiteID, day, addErr)
	}
	return errors.Join(putErr, addErr)
}

func (s *dynamoStore) usage(ctx context.Context, siteID, fromDay, toDay string) ([]UsageRow, error) {
	p := dynamodb.NewQueryPaginator(s.db, &dynamodb.QueryInput{
		TableName:              &s.table,
		KeyConditionExpression: aws.String("PK = :p AND SK BETWEEN :a AND :b"),
		ExpressionAttributeValues: map[string]types.AttributeValue{
			":p": str(usagePK(siteID)), ":a": str(fromDay), ":b": str(toDay + "#\uffff"),
		},
	})
	rows := []UsageRow{}
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return nil, fmt.Errorf("query AI usage of %s: %w", siteID, err)
		}
		for _, it := range page.Items {
			parts := strings.SplitN(getStr(it, "SK"), "#", 3)
			if len(parts) != 3 {
				continue
			}
			model := unescapeKeyPart(parts[2])
			rows = append(rows, UsageRow{
				Day: parts[0], Provider: llm.Name(parts[1]), Model: model,
				Calls: getNum(it, "calls"), Failures: getNum(it, "failures"),
				InputTokens: getNum(it, "input_tokens"), OutputTokens: getNum(it, "output_tokens"), CostMicros: getNum(it, "cost_micros"),
			})
		}
	}
	return rows, nil
}

// unescapeKeyPart undoes keyPart.
var unescapeKeyPart = strings.NewReplacer("%23", "#", "%25", "%").Replace

func (s *dynamoStore) cooldowns(ctx context.Context) (map[llm.Name]coolState, error) {
	out, err := s.db.Query(ctx, &dynamodb.QueryInput{
		TableName:                 &s.table,
		KeyConditionExpression:    aws.String("PK = :p"),
		ExpressionAttributeValues: map[string]types.AttributeValue{":p": str(cooldownPK)},
		ConsistentRead:            aws.Bool(true),
	})
	if err != nil {
		return nil, fmt.Errorf("read AI provider cooldowns: %w", err)
	}
	m := make(map[llm.Name]coolState, len(out.Items))
	for _, it := range out.Items {
		m[llm.Name(getStr(it, "SK"))] = coolFrom(it)
	}
	return m, nil
}

func coolFrom(it map[string]types.AttributeValue) coolState {
	return coolState{Failures: int(getNum(it, "failures")), WindowStart: getTime(it, "window_start_ms"), Until: getTime(it, "until_ms")}
}

func (s *dynamoStore) failure(ctx context.Context, name llm.Name, now time.Time, p CooldownPolicy, minUntil time.Time) (coolState, error) {
	k := key(cooldownPK, string(name))
	floor := now.Add(-p.Window).UnixMilli()
	ttl := num(now.Add(p.Window + p.Duration + leaseKeep).Unix())
	var st coolState
	counted := false
	// Count into the open window, or open a new one. Two conditional
	// updates, so that concurrent failures on other instances are never
	// lost; a lost race retries.
	for try := 0; try < 3 && !counted; try++ {
		out, err := s.db.UpdateItem(ctx, &dynamodb.UpdateItemInput{
			TableName:                 &s.table,
			Key:                       k,
			UpdateExpression:          aws.String("SET window_start_ms = if_not_exists(window_start_ms, :now), expires_at = :ttl ADD failures :one"),
			ConditionExpression:       aws.String("attribute_not_exists(window_start_ms) OR window_start_ms > :floor"),
			ExpressionAttributeValues: map[string]types.AttributeValue{":now": num(now.UnixMilli()), ":ttl": ttl, ":one": num(1), ":floor": num(floor)},
			ReturnValues:              types.ReturnValueAllNew,
		})
		if err == nil {
			st, counted = coolFrom(out.Attributes), true
			break
		}
		if !isCCF(err) {
			return coolState{}, fmt.Errorf("count failure of %s: %w", name, err)
		}
		out, err = s.db.UpdateItem(ctx, &dynamodb.UpdateItemInput{
			TableName:                 &s.table,
			Key:                       k,
			UpdateExpression:          aws.String("SET window_start_ms = :now, failures = :one, expires_at = :ttl"),
			ConditionExpression:       aws.String("window_start_ms <= :floor"),
			ExpressionAttributeValues: map[string]types.AttributeValue{":now": num(now.UnixMilli()), ":ttl": ttl, ":one": num(1), ":floor": num(floor)},
			ReturnValues:              types.ReturnValueAllNew,
		})
		if err == nil {
			st, counted = coolFrom(out.Attributes), true
			break
		}
		if !isCCF(err) {
			return coolState{}, fmt.Errorf("count failure of %s: %w", name, err)
		}
	}
	until := time.Time{}
	if st.Failures >= p.Failures {
		until = now.Add(p.Duration)
	}
	if minUntil.After(until) {
		until = minUntil
	}
	if until.IsZero() || !until.After(st.Until) {
		return st, nil
	}
	expr := "SET until_ms = :u, expires_at = :ttl"
	if st.Failures >= p.Failures {
		// The cooldown consumes the failures: the next window starts
		// afresh.
		expr = "SET until_ms = :u, expires_at = :ttl, failures = :zero REMOVE window_start_ms"
	}
	vals := map[string]types.AttributeValue{":u": num(until.UnixMilli()), ":ttl": num(until.Add(leaseKeep).Unix())}
	if strings.Contains(expr, ":zero") {
		vals[":zero"] = num(0)
	}
	_, err := s.db.UpdateItem(ctx, &dynamodb.UpdateItemInput{
		TableName:                 &s.table,
		Key:                       k,
		UpdateExpression:          aws.String(expr),
		ConditionExpression:       aws.String("attribute_not_exists(until_ms) OR until_ms < :u"),
		ExpressionAttributeValues: vals,
	})
	if err != nil && !isCCF(err) {
		return coolState{}, fmt.Errorf("cool down %s: %w", name, err)
	}
	if st.Failures >= p.Failures {
		st.Failures, st.WindowStart = 0, time.Time{}
	}
	st.Until = until
	return st, nil
}

func (s *dynamoStore) success(ctx context.Context, name llm.Name) error {
	_, err := s.db.UpdateItem(ctx, &dynamodb.UpdateItemInput{
		TableName:                 &s.table,
		Key:                       key(cooldownPK, string(name)),
		UpdateExpression:          aws.String("SET failures = :zero REMOVE window_start_ms"),
		ConditionExpression:       aws.String("attribute_exists(PK)"),
		ExpressionAttributeValues: map[string]types.AttributeValue{":zero": num(0)},
	})
	if err != nil && !isCCF(err) {
		return fmt.Errorf("reset failures of %s: %w", name, err)
	}
	return nil
}
