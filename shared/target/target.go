// Package target owns a site's publishing targets: a target names one of the
// site's connections, a display name, the defaults every post dispatched to
// it is composed with (hashtags, whether to include the link, UTM
// parameters, a message template, platform options), an hourly rate limit
// and whether it is active.
//
// Items (one table, architecture §5):
//
//	SITE#<site>  TARGET#<id>  the target, with a version for optimistic updates
//
// Every read and write is keyed by the caller's site: another site's target
// is not found.
package target

import (
	"fmt"
	"net/url"
	"regexp"
	"sort"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/posse-dev/posse/shared/ai"
	"github.com/posse-dev/posse/shared/apperr"
	"github.com/posse-dev/posse/shared/platform"
)

// Limits of a target's fields.
const (
	MaxNameChars      = 100
	MaxHashtags       = 30
	MaxHashtagChars   = 100
	MaxUTMChars       = 100
	MaxTemplateChars  = 2000
	MaxOptions        = 20
	MaxOptionKeyChars = 40
	MaxOptionChars    = 500
	MaxHourlyRate     = 3600
)

// Placeholders are the names a message template may use, each written in
// braces: {title} {excerpt} {url} {message} {hashtags}.
var Placeholders = []string{"title", "excerpt", "url", "message", "hashtags"}

// DefaultTemplate is the message template of a target that sets none.
const DefaultTemplate = "{title}\n\n{message}\n\n{url}\n\n{hashtags}"

// UTM are the campaign parameters added to the post's link.
type UTM struct {
	Source   string `json:"source" dynamodbav:"source,omitempty"`
	Medium   string `json:"medium" dynamodbav:"medium,omitempty"`
	Campaign string `json:"campaign" dynamodbav:"campaign,omitempty"`
}

// Empty reports whether no parameter is set.
func (u UTM) Empty() bool { return u.Source == "" && u.Medium == "" && u.Campaign == "" }

// Defaults are what every post dispatched to a target is composed with.
type Defaults struct {
	// Hashtags without their leading '#'.
	Hashtags []string `json:"hashtags" dynamodbav:"hashtags"`
	// IncludeLink puts the post's URL (with the UTM parameters) in the text.
	IncludeLink bool `json:"includeLink" dynamodbav:"include_link"`
	UTM         UTM  `json:"utm" dynamodbav:"utm"`
	// MessageTemplate is the text with placeholders; "" means
	// DefaultTemplate.
	MessageTemplate string `json:"messageTemplate" dynamodbav:"message_template"`
	// Options are platform settings passed to the adapter, e.g. TikTok's
	// privacy_level or Mastodon's visibility. The adapter's Validate checks
	// them at dispatch.
	Options map[string]string `json:"options" dynamodbav:"options"`
}

// Template returns the message template in use.
func (d Defaults) Template() string {
	if d.MessageTemplate == "" {
		return DefaultTemplate
	}
	return d.MessageTemplate
}

// Target is a place a site publishes to.
type Target struct {
	ID           string        `json:"id" dynamodbav:"target_id"`
	SiteID       string        `json:"-" dynamodbav:"site_id"`
	ConnectionID string        `json:"connectionId" dynamodbav:"connection_id"`
	Platform     platform.Name `json:"platform" dynamodbav:"platform"`
	Name         string        `json:"name" dynamodbav:"name"`
	Defaults     Defaults      `json:"defaults" dynamodbav:"defaults"`
	// HourlyRateLimit caps the deliveries published to this target per
	// hour; 0 means only the platform's own limits apply.
	HourlyRateLimit int `json:"hourlyRateLimit" dynamodbav:"hourly_rate_limit"`
	// AI is how a dispatch with requestAiAssets adapts this target's text.
	AI        ai.Settings `json:"ai" dynamodbav:"ai"`
	Active    bool        `json:"active" dynamodbav:"active"`
	CreatedAt time.Time   `json:"createdAt" dynamodbav:"created_at"`
	UpdatedAt time.Time   `json:"updatedAt" dynamodbav:"updated_at"`
	Version   int64       `json:"-" dynamodbav:"version"`
}

// DefaultsInput is the defaults of a create or update request. Nil fields
// are not given: on create they take their default, on update they keep
// their value.
type DefaultsInput struct {
	Hashtags        *[]string          `json:"hashtags"`
	IncludeLink     *bool              `json:"includeLink"`
	UTM             *UTM               `json:"utm"`
	MessageTemplate *string            `json:"messageTemplate"`
	Options         *map[string]string `json:"options"`
}

// Input is the body of POST /v1/targets and PATCH /v1/targets/{id}. Nil
// fields are not given.
type Input struct {
	ConnectionID    *string        `json:"connectionId"`
	Name            *string        `json:"name"`
	Defaults        *DefaultsInput `json:"defaults"`
	HourlyRateLimit *int           `json:"hourlyRateLimit"`
	Active          *bool          `json:"active"`
	// AI replaces the target's AI settings as a whole (DefaultAI on create
	// when absent).
	AI *ai.Settings `json:"ai"`
}

// DefaultAI is the AI settings of a target created without any: adapted
// when a dispatch asks for it, up to 3 hashtags, alt text generated for
// images that have none.
var DefaultAI = ai.Settings{Enabled: true, MaxHashtags: 3, GenerateAltText: true}

// apply writes in's given fields onto t, normalised, and returns every
// problem, naming the field. create says whether t is new (connectionId and
// name are then required).
func (in Input) apply(t *Target, create bool) []apperr.Problem {
	var ps []apperr.Problem
	add := func(field, format string, args ...any) {
		ps = append(ps, apperr.Problem{Field: field, Message: fmt.Sprintf(format, args...)})
	}
	switch {
	case in.ConnectionID != nil:
		id := strings.TrimSpace(*in.ConnectionID)
		if id == "" {
			add("connectionId", "must not be empty")
		}
		t.ConnectionID = id
	case create:
		add("connectionId", "is required (the id of one of this site's connections)")
	}
	switch {
	case in.Name != nil:
		name := strings.TrimSpace(*in.Name)
		switch n := utf8.RuneCountInString(name); {
		case n == 0:
			add("name", "must not be empty")
		case n > MaxNameChars:
			add("name", "must be at most %d characters, got %d", MaxNameChars, n)
		case strings.ContainsFunc(name, unicode.IsControl):
			add("name", "must not contain control characters")
		}
		t.Name = name
	case create:
		add("name", "is required")
	}
	if in.HourlyRateLimit != nil {
		if n := *in.HourlyRateLimit; n < 0 || n > MaxHourlyRate {
			add("hourlyRateLimit", "must be from 0 (no limit of our own) to %d, got %d", MaxHourlyRate, n)
		}
		t.HourlyRateLimit = *in.HourlyRateLimit
	}
	if in.Active != nil {
		t.Active = *in.Active
	}
	switch {
	case in.AI != nil:
		ps = append(ps, in.AI.Validate("ai")...)
		t.AI = *in.AI
	case create:
		t.AI = DefaultAI
	}
	if d := in.Defaults; d != nil {
		ps = append(ps, d.apply(&t.Defaults)...)
	}
	return ps
}

func (d DefaultsInput) apply(out *Defaults) []apperr.Problem {
	var ps []apperr.Problem
	if d.Hashtags != nil {
		tags, tp := normalizeHashtags(*d.Hashtags)
		ps = append(ps, tp...)
		out.Hashtags = tags
	}
	if d.IncludeLink != nil {
		out.IncludeLink = *d.IncludeLink
	}
	if d.UTM != nil {
		u := UTM{Source: strings.TrimSpace(d.UTM.Source), Medium: strings.TrimSpace(d.UTM.Medium), Campaign: strings.TrimSpace(d.UTM.Campaign)}
		for name, v := range map[string]string{"source": u.Source, "medium": u.Medium, "campaign": u.Campaign} {
			if n := utf8.RuneCountInString(v); n > MaxUTMChars {
				ps = append(ps, apperr.Problem{Field: "defaults.utm." + name, Message: fmt.Sprintf("must be at most %d characters, got %d", MaxUTMChars, n)})
			} else if strings.ContainsFunc(v, unicode.IsControl) {
				ps = append(ps, apperr.Problem{Field: "defaults.utm." + name, Message: "must not contain control characters"})
			}
		}
		out.UTM = u
	}
	if d.MessageTemplate != nil {
		tpl := strings.ReplaceAll(*d.MessageTemplate, "\r\n", "\n")
		if p := checkTemplate(tpl); p != "" {
			ps = append(ps, apperr.Problem{Field: "defaults.messageTemplate", Message: p})
		}
		out.MessageTemplate = tpl
	}
	if d.Options != nil {
		opts, op := normalizeOptions(*d.Options)
		ps = append(ps, op...)
		out.Options = opts
	}
	sort.Slice(ps, func(i, j int) bool { return ps[i].Field < ps[j].Field })
	return ps
}

// hashtagRe is what a hashtag may hold after its '#': letters, marks,
// digits and underscores.
var hashtagRe = regexp.MustCompile(`^[\p{L}\p{M}\p{N}_]+$`)

// normalizeHashtags strips the leading '#', drops case-insensitive
// repeats and checks each tag.
func normalizeHashtags(in []string) ([]string, []apperr.Problem) {
	var ps []apperr.Problem
	if len(in) > MaxHashtags {
		ps = append(ps, apperr.Problem{Field: "defaults.hashtags", Message: fmt.Sprintf("must hold at most %d hashtags, got %d", MaxHashtags, len(in))})
	}
	out := make([]string, 0, len(in))
	seen := map[string]bool{}
	for i, raw := range in {
		tag := strings.TrimPrefix(strings.TrimSpace(raw), "#")
		field := fmt.Sprintf("defaults.hashtags[%d]", i)
		switch {
		case tag == "":
			ps = append(ps, apperr.Problem{Field: field, Message: "must not be empty"})
			continue
		case utf8.RuneCountInString(tag) > MaxHashtagChars:
			ps = append(ps, apperr.Problem{Field: field, Message: fmt.Sprintf("must be at most %d characters", MaxHashtagChars)})
			continue
		case !hashtagRe.MatchString(tag):
			ps = append(ps, apperr.Problem{Field: field, Message: fmt.Sprintf("%q may hold only letters, digits and underscores", raw)})
			continue
		}
		if k := strings.ToLower(tag); !seen[k] {
			seen[k] = true
			out = append(out, tag)
		}
	}
	return out, ps
}

// placeholderRe matches a {word} in a template.
var placeholderRe = regexp.MustCompile(`\{([A-Za-z_]+)\}`)

// checkTemplate returns why tpl is not a valid template, or "".
func checkTemplate(tpl string) string {
	if n := utf8.RuneCountInString(tpl); n > MaxTemplateChars {
		return fmt.Sprintf("must be at most %d characters, got %d", MaxTemplateChars, n)
	}
	if !utf8.ValidString(tpl) {
		return "must be valid UTF-8"
	}
	for _, m := range placeholderRe.FindAllStringSubmatch(tpl, -1) {
		known := false
		for _, p := range Placeholders {
			if m[1] == p {
				known = true
			}
		}
		if !known {
			return fmt.Sprintf("%s is not a placeholder; use {%s}", m[0], strings.Join(Placeholders, "} {"))
		}
	}
	return ""
}

// optionKeyRe is what an option name may be.
var optionKeyRe = regexp.MustCompile(`^[a-z][a-z0-9_]*$`)

func normalizeOptions(in map[string]string) (map[string]string, []apperr.Problem) {
	var ps []apperr.Problem
	if len(in) > MaxOptions {
		ps = append(ps, apperr.Problem{Field: "defaults.options", Message: fmt.Sprintf("must hold at most %d options, got %d", MaxOptions, len(in))})
	}
	out := make(map[string]string, len(in))
	for k, v := range in {
		field := "defaults.options." + k
		switch {
		case len(k) > MaxOptionKeyChars || !optionKeyRe.MatchString(k):
			ps = append(ps, apperr.Problem{Field: "defaults.options", Message: fmt.Sprintf("%q is not an option name (lowercase letters, digits and _, at most %d)", k, MaxOptionKeyChars)})
		case utf8.RuneCountInString(v) > MaxOptionChars:
			ps = append(ps, apperr.Problem{Field: field, Message: fmt.Sprintf("must be at most %d characters", MaxOptionChars)})
		default:
			out[k] = v
		}
	}
	return out, ps
}

// TaggedLink returns link with the UTM parameters set (replacing any of
// the same name it already has), or link unchanged when none is set or it
// does not parse.
func TaggedLink(link string, u UTM) string {
	if u.Empty() || link == "" {
		return link
	}
	parsed, err := url.Parse(link)
	if err != nil {
		return link
	}
	q := parsed.Query()
	for name, v := range map[string]string{"utm_source": u.Source, "utm_medium": u.Medium, "utm_campaign": u.Campaign} {
		if v != "" {
			q.Set(name, v)
		}
	}
	parsed.RawQuery = q.Encode()
	return parsed.String()
}
