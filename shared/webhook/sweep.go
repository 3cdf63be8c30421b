package webhook

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"

	"github.com/posse-dev/posse/shared/apperr"
)

// sendAPI is the part of the SQS client a Sweeper uses.
type sendAPI interface {
	SendMessage(ctx context.Context, in *sqs.SendMessageInput, opts ...func(*sqs.Options)) (*sqs.SendMessageOutput, error)
}

// Sweeper sends attempts that lost their message again: pending ones whose
// fan-out died before sending, retrying ones whose wake-up could not be
// sent, sending ones whose worker died (their lease expired). The dispatch
// sweep calls it every minute.
type Sweeper struct {
	Store    *Store
	Queue    sendAPI
	QueueURL string
	Now      func() time.Time
}

// Sweep sends again up to limit attempts due before before and returns how
// many it sent. It goes on past a failed attempt and returns the first
// error.
func (s *Sweeper) Sweep(ctx context.Context, before time.Time, limit int) (int, error) {
	now := time.Now
	if s.Now != nil {
		now = s.Now
	}
	refs, err := s.Store.Waiting(ctx, before, limit)
	if err != nil {
		return 0, err
	}
	sent := 0
	var first error
	for _, ref := range refs {
		err := s.one(ctx, ref, before, now().UTC())
		if errors.Is(err, errSkip) {
			continue
		}
		if err != nil {
			if first == nil {
				first = err
			}
			continue
		}
		sent++
	}
	return sent, first
}

var errSkip = errors.New("skip")

// one re-reads an attempt, makes it due now (a sending one loses its
// lease: its worker is gone, a new token fences it out) and sends its
// message.
func (s *Sweeper) one(ctx context.Context, ref AttemptRef, before, now time.Time) error {
	a, err := s.Store.GetAttempt(ctx, ref.SiteID, ref.ID)
	if apperr.Is(err, apperr.KindNotFound) {
		return errSkip
	}
	if err != nil {
		return err
	}
	due, waiting := a.due()
	if !waiting || !due.Before(before) {
		return errSkip // moved on since the index was read
	}
	if a.State == AttemptSending {
		a.State = AttemptRetrying
		a.Fence++
		a.LeaseUntil = nil
	}
	a.NextAttemptAt, a.WakeAt = &now, &now
	if _, err := s.Store.PutAttempt(ctx, a, now); errors.Is(err, errStale) {
		return errSkip
	} else if err != nil {
		return err
	}
	_, err = s.Queue.SendMessage(ctx, &sqs.SendMessageInput{QueueUrl: &s.QueueURL, MessageBody: aws.String(attemptMessage(a).Encode())})
	if err != nil {
		return fmt.Errorf("send webhook attempt %s again: %w", a.ID, err)
	}
	return nil
}
