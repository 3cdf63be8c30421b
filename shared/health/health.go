// Package health checks that the AWS resources a function depends on
// answer: the table and the queues. It backs GET /v1/health.
package health

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/aws-sdk-go-v2/service/sqs/types"
)

type dynamoAPI interface {
	DescribeTable(ctx context.Context, in *dynamodb.DescribeTableInput, opts ...func(*dynamodb.Options)) (*dynamodb.DescribeTableOutput, error)
}

type sqsAPI interface {
	GetQueueAttributes(ctx context.Context, in *sqs.GetQueueAttributesInput, opts ...func(*sqs.Options)) (*sqs.GetQueueAttributesOutput, error)
}

// Checker checks a table and named queues, concurrently, each bounded by
// Timeout.
type Checker struct {
	db      dynamoAPI
	sqs     sqsAPI
	table   string
	queues  map[string]string // check name → queue URL
	Timeout time.Duration
}

// New returns a Checker. queues maps a check name ("dispatchQueue") to a URL;
// empty URLs are skipped.
func New(db dynamoAPI, q sqsAPI, table string, queues map[string]string) *Checker {
	return &Checker{db: db, sqs: q, table: table, queues: queues, Timeout: 2 * time.Second}
}

// Check returns each dependency's error, nil for the ones that answer.
func (c *Checker) Check(ctx context.Context) map[string]error {
	ctx, cancel := context.WithTimeout(ctx, c.Timeout)
	defer cancel()
	var mu sync.Mutex
	out := map[string]error{}
	var wg sync.WaitGroup
	set := func(name string, err error) {
		mu.Lock()
		out[name] = err
		mu.Unlock()
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		_, err := c.db.DescribeTable(ctx, &dynamodb.DescribeTableInput{TableName: &c.table})
		if err != nil {
			err = fmt.Errorf("describe table %s: %w", c.table, err)
		}
		set("table", err)
	}()
	for name, url := range c.queues {
		if url == "" {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := c.sqs.GetQueueAttributes(ctx, &sqs.GetQueueAttributesInput{
				QueueUrl:       &url,
				AttributeNames: []types.QueueAttributeName{types.QueueAttributeNameApproximateNumberOfMessages},
			})
			if err != nil {
				err = fmt.Errorf("queue %s: %w", name, err)
			}
			set(name, err)
		}()
	}
	wg.Wait()
	return out
}
