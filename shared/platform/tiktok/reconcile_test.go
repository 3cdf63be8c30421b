package tiktok_test

import (
	"context"
	"testing"

	"github.com/posse-dev/posse/infra/platformsim"
	"github.com/posse-dev/posse/shared/apperr"
	"github.com/posse-dev/posse/shared/platform"
	"github.com/posse-dev/posse/shared/platform/tiktok"
)

// A publish still processing when it is reconciled is not "cannot tell":
// the status endpoint will answer once processing ends, so Reconcile says
// transient (ask again later), never ambiguous, which would make the
// dispatcher mark the delivery unknown for a person to decide. Found by the
// fault soak ("publish ... is still PROCESSING_DOWNLOAD" ended unknown).
func TestReconcileWhileProcessingIsTransient(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	ad := e.adapter(tiktok.Config{VideoSource: tiktok.SourceFileUpload})
	e.sim.AddFault(platformsim.Fault{Platform: "tiktok", Kind: platformsim.FaultTimeoutAfterCreate})
	j := &platformsim.MemJournal{}
	p := platform.Post{Text: "uploaded", Options: opts("PUBLIC_TO_EVERYONE"), Media: e.media("v.mp4")}
	if _, err := ad.Publish(context.Background(), e.acct, p, j); apperr.KindOf(err) != apperr.KindAmbiguous {
		t.Fatalf("Publish: got %v, want ambiguous", err)
	}
	p.Journal = j.Entries()
	processing, found := 0, false
	for i := 0; i < 6 && !found; i++ { // the status moves on with each fetch
		var err error
		_, found, err = ad.Reconcile(context.Background(), e.acct, p)
		switch {
		case err == nil:
		case apperr.KindOf(err) == apperr.KindTransient:
			processing++
		default:
			t.Fatalf("Reconcile while processing: got %s (%v), want transient", apperr.KindOf(err), err)
		}
	}
	if !found || processing == 0 {
		t.Errorf("got found=%v after %d processing answers; want processing first, then found", found, processing)
	}
}
