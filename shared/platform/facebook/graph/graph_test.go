package graph_test

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/posse-dev/posse/shared/apperr"
	"github.com/posse-dev/posse/shared/platform/facebook/graph"
)

func TestClassify(t *testing.T) {
	t.Parallel()
	cl := &graph.Client{Platform: "facebook", ThrottleWait: 7 * time.Minute, QuotaWait: time.Hour}
	buc := http.Header{"X-Business-Use-Case-Usage": {`{"1":[{"type":"pages","call_count":100,"estimated_time_to_regain_access":3}],"2":[{"estimated_time_to_regain_access":12}]}`}}
	cases := []struct {
		name      string
		status    int
		header    http.Header
		body      string
		final     bool
		wantKind  apperr.Kind
		wantCode  string
		wantAfter time.Duration
	}{
		{"token expired", 400, nil, `{"error":{"code":190,"error_subcode":463}}`, false, apperr.KindReconnect, "facebook.token", 0},
		{"permission removed", 403, nil, `{"error":{"code":200}}`, true, apperr.KindReconnect, "facebook.token", 0},
		{"page throttled with estimate", 400, buc, `{"error":{"code":32}}`, true, apperr.KindRateLimited, "facebook.throttled", 12 * time.Minute},
		{"BUC throttled without estimate", 400, nil, `{"error":{"code":80001}}`, false, apperr.KindRateLimited, "facebook.throttled", 7 * time.Minute},
		{"publishing cap", 400, nil, `{"error":{"code":9,"error_subcode":2207042}}`, true, apperr.KindRateLimited, "facebook.publishing_limit", time.Hour},
		{"spam block outranks throttle code 4", 400, nil, `{"error":{"code":4,"error_subcode":2207051}}`, true, apperr.KindPermanent, "facebook.spam_restricted", 0},
		{"transient before the write", 500, nil, `{"error":{"code":2,"is_transient":true}}`, false, apperr.KindTransient, "facebook.server_error", 0},
		{"transient on the write", 500, nil, `{"error":{"code":2,"is_transient":true}}`, true, apperr.KindAmbiguous, "facebook.server_error", 0},
		{"download timeout", 400, nil, `{"error":{"code":-2,"error_subcode":2207003}}`, false, apperr.KindTransient, "facebook.server_error", 0},
		{"not ready on the write is safe", 400, nil, `{"error":{"code":9007,"error_subcode":2207027}}`, true, apperr.KindTransient, "facebook.container_not_ready", 0},
		{"duplicate", 400, nil, `{"error":{"code":506}}`, true, apperr.KindPermanent, "facebook.duplicate", 0},
		{"policy block", 400, nil, `{"error":{"code":368}}`, true, apperr.KindPermanent, "facebook.policy_block", 0},
		{"invalid parameter", 400, nil, `{"error":{"code":100}}`, false, apperr.KindPermanent, "facebook.rejected", 0},
		{"HTML 502", 502, nil, `<html>bad gateway</html>`, true, apperr.KindAmbiguous, "facebook.server_error", 0},
		{"bare 429", 429, nil, ``, false, apperr.KindRateLimited, "facebook.throttled", 7 * time.Minute},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			h := tc.header
			if h == nil {
				h = http.Header{}
			}
			e := cl.Classify(tc.status, h, []byte(tc.body), tc.final)
			if e.Kind != tc.wantKind || e.Code != tc.wantCode || e.RetryAfter != tc.wantAfter {
				t.Fatalf("got %s/%s after %v, want %s/%s after %v", e.Kind, e.Code, e.RetryAfter, tc.wantKind, tc.wantCode, tc.wantAfter)
			}
			if e.Retryable != (tc.wantKind == apperr.KindRateLimited || tc.wantKind == apperr.KindTransient) {
				t.Errorf("got Retryable %v for %s", e.Retryable, e.Kind)
			}
			if e.Platform != "facebook" || e.HTTPStatus != tc.status {
				t.Errorf("got platform %q status %d, want facebook %d", e.Platform, e.HTTPStatus, tc.status)
			}
		})
	}
}

func TestRedact(t *testing.T) {
	t.Parallel()
	body := `{"access_token":"EAAB123secret","error":{"message":"bad token EAAB123secret?"},"next":"https://graph/x?access_token=EAAB123secret&after=1"}` +
		` Authorization: Bearer EAAB123secret ` + strings.Repeat("x", 3000)
	got := graph.Redact([]byte(body))
	if strings.Count(got, "EAAB123secret") != 1 { // the message repeats it in free text: only structured places are known
		t.Errorf("got %q, want the token removed from the field, the query and the header", got[:300])
	}
	if len(got) > 2100 {
		t.Errorf("got %d bytes, want about 2 KB", len(got))
	}
}
