// Package batch runs the records of one SQS batch through a handler, a few
// at a time, as the queue consumers (dispatch, webhook) do with partial
// batch failures: a record whose handler fails or panics is reported, the
// others are not affected.
package batch

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
)

// Failed handles every record of recs, at most concurrency at once, and
// returns the ids (id(record)) of those whose handler returned an error or
// panicked, in the batch's order. A panic is logged as "<what> record
// panicked" with the record's id; it never escapes.
func Failed[R any](ctx context.Context, log *slog.Logger, what string, recs []R, concurrency int,
	id func(R) string, handle func(context.Context, R) error) []string {
	failed := make([]bool, len(recs))
	sem := make(chan struct{}, max(concurrency, 1))
	var wg sync.WaitGroup
	for i, rec := range recs {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			defer func() {
				if p := recover(); p != nil {
					log.ErrorContext(ctx, what+" record panicked", "message_id", id(rec), "panic", fmt.Sprint(p))
					failed[i] = true
				}
			}()
			failed[i] = handle(ctx, rec) != nil
		}()
	}
	wg.Wait()
	var ids []string
	for i, f := range failed {
		if f {
			ids = append(ids, id(recs[i]))
		}
	}
	return ids
}
