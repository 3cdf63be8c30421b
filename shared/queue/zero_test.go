package queue

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
)

// TestZeroReceiveTimeoutsAreSent proves the request carries
// VisibilityTimeout 0, which the SDK alone would omit.
func TestZeroReceiveTimeoutsAreSent(t *testing.T) {
	t.Parallel()
	var (
		mu     sync.Mutex
		bodies []map[string]any
	)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		var m map[string]any
		_ = json.Unmarshal(b, &m)
		mu.Lock()
		bodies = append(bodies, m)
		mu.Unlock()
		w.Header().Set("Content-Type", "application/x-amz-json-1.0")
		_, _ = w.Write([]byte(`{"Messages":[]}`))
	}))
	t.Cleanup(srv.Close)
	client := sqs.New(sqs.Options{Region: "us-east-1", BaseEndpoint: aws.String(srv.URL),
		Credentials: credentials.NewStaticCredentialsProvider("a", "b", "")})
	in := &sqs.ReceiveMessageInput{QueueUrl: aws.String(srv.URL + "/q"), MaxNumberOfMessages: 10}
	if _, err := client.ReceiveMessage(context.Background(), in); err != nil {
		t.Fatal(err)
	}
	if _, err := client.ReceiveMessage(context.Background(), in, zeroReceiveTimeouts); err != nil {
		t.Fatal(err)
	}
	if _, ok := bodies[0]["VisibilityTimeout"]; ok {
		t.Fatalf("the SDK now sends a zero VisibilityTimeout by itself (%v): zeroReceiveTimeouts can go", bodies[0])
	}
	if bodies[1]["VisibilityTimeout"] != float64(0) || bodies[1]["WaitTimeSeconds"] != float64(0) || bodies[1]["MaxNumberOfMessages"] != float64(10) {
		t.Errorf("with zeroReceiveTimeouts: got %v, want VisibilityTimeout and WaitTimeSeconds 0 and the rest kept", bodies[1])
	}
}
