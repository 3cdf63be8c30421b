package target

import (
	"context"
	"errors"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb"

	"github.com/posse-dev/posse/infra/local/mototest"
	"github.com/posse-dev/posse/shared/ai"
	"github.com/posse-dev/posse/shared/apperr"
	"github.com/posse-dev/posse/shared/connection"
	"github.com/posse-dev/posse/shared/platform"
)

func TestMain(m *testing.M) { os.Exit(mototest.Main(m)) }

func ptr[T any](v T) *T { return &v }

func TestInputProblems(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name      string
		in        Input
		create    bool
		wantField string
	}{
		{"create needs a connection", Input{Name: ptr("x")}, true, "connectionId"},
		{"create needs a name", Input{ConnectionID: ptr("conn_a")}, true, "name"},
		{"blank name", Input{Name: ptr("  ")}, false, "name"},
		{"long name", Input{Name: ptr(strings.Repeat("n", MaxNameChars+1))}, false, "name"},
		{"name with a control character", Input{Name: ptr("a\x00b")}, false, "name"},
		{"negative rate", Input{HourlyRateLimit: ptr(-1)}, false, "hourlyRateLimit"},
		{"rate over the cap", Input{HourlyRateLimit: ptr(MaxHourlyRate + 1)}, false, "hourlyRateLimit"},
		{"empty hashtag", Input{Defaults: &DefaultsInput{Hashtags: &[]string{"ok", "#"}}}, false, "defaults.hashtags[1]"},
		{"hashtag with a space", Input{Defaults: &DefaultsInput{Hashtags: &[]string{"two words"}}}, false, "defaults.hashtags[0]"},
		{"too many hashtags", Input{Defaults: &DefaultsInput{Hashtags: ptr(make([]string, MaxHashtags+1))}}, false, "defaults.hashtags"},
		{"unknown placeholder", Input{Defaults: &DefaultsInput{MessageTemplate: ptr("{title} {author}")}}, false, "defaults.messageTemplate"},
		{"long template", Input{Defaults: &DefaultsInput{MessageTemplate: ptr(strings.Repeat("t", MaxTemplateChars+1))}}, false, "defaults.messageTemplate"},
		{"long utm", Input{Defaults: &DefaultsInput{UTM: &UTM{Campaign: strings.Repeat("c", MaxUTMChars+1)}}}, false, "defaults.utm.campaign"},
		{"bad option name", Input{Defaults: &DefaultsInput{Options: &map[string]string{"Privacy Level": "x"}}}, false, "defaults.options"},
		{"long option value", Input{Defaults: &DefaultsInput{Options: &map[string]string{"visibility": strings.Repeat("v", MaxOptionChars+1)}}}, false, "defaults.options.visibility"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var tg Target
			ps := tt.in.apply(&tg, tt.create)
			found := false
			for _, p := range ps {
				found = found || p.Field == tt.wantField
			}
			if !found {
				t.Errorf("problems: got %+v, want one naming %s", ps, tt.wantField)
			}
		})
	}
}

func TestInputNormalises(t *testing.T) {
	t.Parallel()
	var tg Target
	in := Input{Name: ptr("  Main X  "), Defaults: &DefaultsInput{Hashtags: &[]string{"#Go", "go", "Posse_2"}, MessageTemplate: ptr("{title}\r\n{url}"),
		UTM: &UTM{Source: " posse "}}}
	if ps := in.apply(&tg, false); len(ps) > 0 {
		t.Fatalf("problems: %+v", ps)
	}
	if tg.Name != "Main X" || strings.Join(tg.Defaults.Hashtags, ",") != "Go,Posse_2" || tg.Defaults.MessageTemplate != "{title}\n{url}" || tg.Defaults.UTM.Source != "posse" {
		t.Errorf("normalised: got %+v", tg)
	}
}

func TestTaggedLink(t *testing.T) {
	t.Parallel()
	tests := []struct{ link, want string }{
		{"https://b.example/p", "https://b.example/p?utm_medium=social&utm_source=posse"},
		{"https://b.example/p?utm_source=old&a=1#frag", "https://b.example/p?a=1&utm_medium=social&utm_source=posse#frag"},
	}
	for _, tt := range tests {
		if got := TaggedLink(tt.link, UTM{Source: "posse", Medium: "social"}); got != tt.want {
			t.Errorf("TaggedLink(%q): got %q, want %q", tt.link, got, tt.want)
		}
	}
	if got := TaggedLink("https://b.example/p", UTM{}); got != "https://b.example/p" {
		t.Errorf("without UTM: got %q", got)
	}
}

func TestValidID(t *testing.T) {
	t.Parallel()
	for id, want := range map[string]bool{"tgt_abc234": true, "tgt_": false, "tgt_ABC": false, "conn_abc": false, "tgt_a#b": false, "tgt_" + strings.Repeat("a", 70): false} {
		if got := ValidID(id); got != want {
			t.Errorf("ValidID(%q): got %v, want %v", id, got, want)
		}
	}
}

// conns is a connectionGetter with fixed connections per site.
type conns map[string]connection.Connection // "site/id"

func (c conns) Get(_ context.Context, siteID, id string) (connection.Connection, error) {
	if v, ok := c[siteID+"/"+id]; ok {
		return v, nil
	}
	return connection.Connection{}, apperr.NotFound("connection")
}

func TestStoreAgainstMoto(t *testing.T) {
	t.Parallel()
	db := dynamodb.NewFromConfig(mototest.Config(t))
	table := mototest.Table(t, db)
	ctx := context.Background()
	cs := conns{
		"site_a/conn_x":    {ID: "conn_x", Platform: platform.X},
		"site_a/conn_bsky": {ID: "conn_bsky", Platform: platform.Bluesky},
		"site_b/conn_y":    {ID: "conn_y", Platform: platform.Mastodon},
	}
	now := time.Date(2026, 11, 26, 10, 0, 0, 0, time.UTC)
	s := NewStore(db, table, cs, func() time.Time { return now }, nil)

	created, err := s.Create(ctx, "site_a", Input{ConnectionID: ptr("conn_x"), Name: ptr("Main X")})
	if err != nil {
		t.Fatalf("Create: %v", err)
	}
	if created.Platform != platform.X || !created.Active || !created.Defaults.IncludeLink || created.Defaults.Hashtags == nil || !ValidID(created.ID) {
		t.Errorf("created: got %+v, want an active X target that includes the link", created)
	}
	// Another site's connection is not this site's.
	_, err = s.Create(ctx, "site_a", Input{ConnectionID: ptr("conn_y"), Name: ptr("Foreign")})
	if e, ok := apperr.As(err); !ok || e.Kind != apperr.KindUnprocessable || len(e.Problems) != 1 || e.Problems[0].Field != "connectionId" {
		t.Errorf("foreign connection: got %v, want 422 naming connectionId", err)
	}
	got, err := s.Get(ctx, "site_a", created.ID)
	if err != nil || got.Name != "Main X" || !got.CreatedAt.Equal(now) {
		t.Errorf("Get: got %+v, %v", got, err)
	}
	if _, err := s.Get(ctx, "site_b", created.ID); !apperr.Is(err, apperr.KindNotFound) {
		t.Errorf("Get from another site: got %v, want not found", err)
	}

	now = now.Add(time.Minute)
	up, err := s.Update(ctx, "site_a", created.ID, Input{ConnectionID: ptr("conn_bsky"), Active: ptr(false),
		Defaults: &DefaultsInput{Hashtags: &[]string{"go"}}})
	if err != nil {
		t.Fatalf("Update: %v", err)
	}
	if up.Platform != platform.Bluesky || up.Active || up.Name != "Main X" || up.Defaults.Hashtags[0] != "go" || !up.Defaults.IncludeLink || !up.UpdatedAt.Equal(now) {
		t.Errorf("updated: got %+v", up)
	}
	if _, err := s.Update(ctx, "site_a", created.ID, Input{ConnectionID: ptr("conn_nope")}); !apperr.Is(err, apperr.KindUnprocessable) {
		t.Errorf("update to an unknown connection: got %v, want 422", err)
	}
	if _, err := s.Update(ctx, "site_b", created.ID, Input{Name: ptr("stolen")}); !apperr.Is(err, apperr.KindNotFound) {
		t.Errorf("update from another site: got %v, want not found", err)
	}

	second, err := s.Create(ctx, "site_a", Input{ConnectionID: ptr("conn_x"), Name: ptr("Second")})
	if err != nil {
		t.Fatal(err)
	}
	many, err := s.GetMany(ctx, "site_a", []string{created.ID, second.ID, "tgt_nope", "garbage"})
	if err != nil || len(many) != 2 {
		t.Errorf("GetMany: got %d targets, %v; want 2", len(many), err)
	}
	if many, _ := s.GetMany(ctx, "site_b", []string{created.ID}); len(many) != 0 {
		t.Errorf("GetMany from another site: got %v, want none", many)
	}

	page, next, err := s.List(ctx, "site_a", 1, "")
	if err != nil || len(page) != 1 || next == "" {
		t.Fatalf("List page 1: got %d, %q, %v", len(page), next, err)
	}
	page2, next2, err := s.List(ctx, "site_a", 1, next)
	if err != nil || len(page2) != 1 || page2[0].ID == page[0].ID {
		t.Fatalf("List page 2: got %+v, %v", page2, err)
	}
	if next2 != "" {
		if page3, _, _ := s.List(ctx, "site_a", 1, next2); len(page3) != 0 {
			t.Errorf("List page 3: got %d, want 0", len(page3))
		}
	}
	if _, _, err := s.List(ctx, "site_b", 1, next); !apperr.Is(err, apperr.KindInvalid) {
		t.Errorf("another site's cursor: got %v, want invalid", err)
	}

	if err := s.Delete(ctx, "site_b", created.ID); !apperr.Is(err, apperr.KindNotFound) {
		t.Errorf("Delete from another site: got %v, want not found", err)
	}
	if err := s.Delete(ctx, "site_a", created.ID); err != nil {
		t.Fatalf("Delete: %v", err)
	}
	if err := s.Delete(ctx, "site_a", created.ID); !apperr.Is(err, apperr.KindNotFound) {
		t.Errorf("Delete twice: got %v, want not found", err)
	}
}

func TestCreateFailsWhenIDsCannotBeMade(t *testing.T) {
	t.Parallel()
	s := NewStore(nil, "t", conns{}, nil, func([]byte) (int, error) { return 0, errors.New("no entropy") })
	if _, err := s.Create(context.Background(), "site_a", Input{ConnectionID: ptr("conn_x"), Name: ptr("x")}); err == nil || !strings.Contains(err.Error(), "generate target id") {
		t.Errorf("Create: got %v, want the id error", err)
	}
}

func TestInputAISettings(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		name      string
		in        ai.Settings
		wantField string
	}{
		{"tone over 200 characters", ai.Settings{Tone: strings.Repeat("a", 201)}, "ai.tone"},
		{"too many hashtags", ai.Settings{MaxHashtags: 11}, "ai.maxHashtags"},
		{"not a language tag", ai.Settings{Language: "not a language"}, "ai.language"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var tg Target
			ps := Input{AI: &tt.in}.apply(&tg, false)
			if len(ps) != 1 || ps[0].Field != tt.wantField {
				t.Errorf("problems: got %+v, want one naming %s", ps, tt.wantField)
			}
		})
	}
	var created Target
	if ps := (Input{ConnectionID: ptr("conn_a"), Name: ptr("x")}).apply(&created, true); len(ps) > 0 || created.AI != DefaultAI {
		t.Errorf("created without ai: got %+v %+v, want DefaultAI", created.AI, ps)
	}
	kept := Target{AI: ai.Settings{Enabled: true, Tone: "dry"}}
	if ps := (Input{Name: ptr("y")}).apply(&kept, false); len(ps) > 0 || kept.AI.Tone != "dry" {
		t.Errorf("an update without ai changed it: got %+v", kept.AI)
	}
}
