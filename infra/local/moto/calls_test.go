package moto_test

import (
	"sync"

	"context"
	"strings"
	"testing"

	awsmiddleware "github.com/aws/aws-sdk-go-v2/aws/middleware"
	"github.com/aws/smithy-go/middleware"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	ddbtypes "github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/aws/aws-sdk-go-v2/service/scheduler"
	"github.com/aws/aws-sdk-go-v2/service/sqs"

	"github.com/posse-dev/posse/infra/local/moto"
	"github.com/posse-dev/posse/infra/local/mototest"
)

// TestCallDetail: requests are counted by the caller's app id, the
// service's signing name and the operation (X-Amz-Target or Scheduler's
// REST route), DynamoDB's with the request units they cost, and
// ResetCalls zeroes them. It runs its own moto so the
// reset touches no other test.
func TestCallDetail(t *testing.T) {
	mototest.Server(t) // skips, or fails under POSSE_INTEGRATION=1, without moto
	ctx := context.Background()
	srv, err := moto.Start(ctx, moto.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	named := moto.Config(srv.Endpoint())
	named.AppID = "BenchFunction"
	// The SDK retries an attempt that failed in transit (a kept-alive
	// connection the server closed, on a loaded machine): moto rightly
	// counts every attempt, so the attempts each operation made are
	// counted here too, after the retry middleware.
	var (
		attemptsMu sync.Mutex
		attempts   = map[string]int{}
	)
	named.APIOptions = append(named.APIOptions, func(st *middleware.Stack) error {
		return st.Finalize.Add(middleware.FinalizeMiddlewareFunc("countAttempts", func(ctx context.Context, in middleware.FinalizeInput, next middleware.FinalizeHandler) (middleware.FinalizeOutput, middleware.Metadata, error) {
			attemptsMu.Lock()
			attempts[awsmiddleware.GetOperationName(ctx)]++
			attemptsMu.Unlock()
			return next.HandleFinalize(ctx, in)
		}), middleware.After)
	})
	q := sqs.NewFromConfig(named)
	qu, err := q.CreateQueue(ctx, &sqs.CreateQueueInput{QueueName: aws.String("counted")})
	if err != nil {
		t.Fatal(err)
	}
	for range 2 {
		if _, err := q.SendMessage(ctx, &sqs.SendMessageInput{QueueUrl: qu.QueueUrl, MessageBody: aws.String("x")}); err != nil {
			t.Fatal(err)
		}
	}
	sch := scheduler.NewFromConfig(moto.Config(srv.Endpoint()))
	if _, err := sch.CreateScheduleGroup(ctx, &scheduler.CreateScheduleGroupInput{Name: aws.String("counted")}); err != nil {
		t.Fatal(err)
	}
	if _, err := sch.GetSchedule(ctx, &scheduler.GetScheduleInput{Name: aws.String("none"), GroupName: aws.String("counted")}); err == nil {
		t.Fatal("GetSchedule of a missing schedule: got no error")
	}

	// DynamoDB: request units by item size and consistency.
	db := dynamodb.NewFromConfig(named)
	if _, err := db.CreateTable(ctx, &dynamodb.CreateTableInput{
		TableName:   aws.String("units"),
		BillingMode: ddbtypes.BillingModePayPerRequest,
		AttributeDefinitions: []ddbtypes.AttributeDefinition{{AttributeName: aws.String("PK"), AttributeType: ddbtypes.ScalarAttributeTypeS},
			{AttributeName: aws.String("SK"), AttributeType: ddbtypes.ScalarAttributeTypeS}},
		KeySchema: []ddbtypes.KeySchemaElement{{AttributeName: aws.String("PK"), KeyType: ddbtypes.KeyTypeHash},
			{AttributeName: aws.String("SK"), KeyType: ddbtypes.KeyTypeRange}},
	}); err != nil {
		t.Fatal(err)
	}
	key := func(pk string) map[string]ddbtypes.AttributeValue {
		return map[string]ddbtypes.AttributeValue{"PK": &ddbtypes.AttributeValueMemberS{Value: pk}, "SK": &ddbtypes.AttributeValueMemberS{Value: "META"}}
	}
	big := key("big") // 1,500 bytes of body: 2 WRU to write, 1 RRU to read
	big["body"] = &ddbtypes.AttributeValueMemberS{Value: strings.Repeat("x", 1500)}
	if _, err := db.PutItem(ctx, &dynamodb.PutItemInput{TableName: aws.String("units"), Item: big}); err != nil {
		t.Fatal(err)
	}
	if _, err := db.GetItem(ctx, &dynamodb.GetItemInput{TableName: aws.String("units"), Key: key("big"), ConsistentRead: aws.Bool(true)}); err != nil {
		t.Fatal(err)
	}
	if _, err := db.GetItem(ctx, &dynamodb.GetItemInput{TableName: aws.String("units"), Key: key("big")}); err != nil {
		t.Fatal(err)
	}
	if _, err := db.TransactWriteItems(ctx, &dynamodb.TransactWriteItemsInput{TransactItems: []ddbtypes.TransactWriteItem{
		{Put: &ddbtypes.Put{TableName: aws.String("units"), Item: key("a")}},
		{Put: &ddbtypes.Put{TableName: aws.String("units"), Item: key("b")}},
	}}); err != nil {
		t.Fatal(err)
	}

	got, err := moto.CallDetail(srv.Endpoint())
	if err != nil {
		t.Fatal(err)
	}
	want := map[moto.CallCount]bool{
		{Caller: "BenchFunction", Service: "sqs", Operation: "CreateQueue", Count: 1}:         true,
		{Caller: "BenchFunction", Service: "sqs", Operation: "SendMessage", Count: 2}:         true,
		{Caller: "unnamed", Service: "scheduler", Operation: "CreateScheduleGroup", Count: 1}: true,
		{Caller: "unnamed", Service: "scheduler", Operation: "GetSchedule", Count: 1}:         true,
		{Caller: "BenchFunction", Service: "dynamodb", Operation: "CreateTable", Count: 1}:    true,
		// 2 WRU for 1.5 KB; 1 + 0.5 RRU for a strong and an eventual read
		// of it; 2 x 1 WRU for each of the two transaction items.
		{Caller: "BenchFunction", Service: "dynamodb", Operation: "PutItem", Count: 1, WriteUnits: 2}:            true,
		{Caller: "BenchFunction", Service: "dynamodb", Operation: "GetItem", Count: 2, ReadUnits: 1.5}:           true,
		{Caller: "BenchFunction", Service: "dynamodb", Operation: "TransactWriteItems", Count: 1, WriteUnits: 4}: true,
	}
	for _, c := range got {
		if n := attempts[c.Operation]; c.Caller == "BenchFunction" && n > 0 && c.Count != n {
			t.Errorf("%s: moto counted %d, the client made %d attempts", c.Operation, c.Count, n)
		}
		calls := map[string]int{"SendMessage": 2, "GetItem": 2}[c.Operation]
		if calls == 0 {
			calls = 1
		}
		if c.Caller == "BenchFunction" && attempts[c.Operation] > calls {
			// A retried attempt: its count was checked above; which of
			// the calls it repeated (and so its units) cannot be told.
			t.Logf("%s was retried (%d attempts for %d calls)", c.Operation, attempts[c.Operation], calls)
			for w := range want {
				if w.Caller == c.Caller && w.Service == c.Service && w.Operation == c.Operation {
					delete(want, w)
				}
			}
			continue
		}
		if !want[c] {
			t.Errorf("unexpected count %+v", c)
		}
		delete(want, c)
	}
	for c := range want {
		t.Errorf("missing count %+v; got %+v", c, got)
	}

	if err := moto.ResetCalls(srv.Endpoint()); err != nil {
		t.Fatal(err)
	}
	if got, err = moto.CallDetail(srv.Endpoint()); err != nil || len(got) != 0 {
		t.Fatalf("after ResetCalls: got %+v, %v; want no counts", got, err)
	}
	if calls, err := moto.Calls(srv.Endpoint()); err != nil || len(calls) != 0 {
		t.Fatalf("Calls after ResetCalls: got %v, %v; want no counts", calls, err)
	}
}
