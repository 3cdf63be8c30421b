package platform

import (
	"fmt"
	"net/url"
	"path"
	"slices"
	"strings"

	"github.com/posse-dev/posse/shared/apperr"
)

// extTypes maps the file extensions every adapter recognises to MIME types.
var extTypes = map[string]string{
	".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".png": "image/png", ".gif": "image/gif", ".webp": "image/webp",
	".mp4": "video/mp4", ".mov": "video/quicktime",
}

// GuessMIME is m's MIME type as given, else the one its URL's extension
// names (among the common extensions and an adapter's extra ones), else ""
// (unknown until the media is fetched).
func GuessMIME(m Media, extra map[string]string) string {
	if m.MIMEType != "" {
		return m.MIMEType
	}
	u, err := url.Parse(m.URL)
	if err != nil {
		return ""
	}
	ext := strings.ToLower(path.Ext(u.Path))
	if t, ok := extra[ext]; ok {
		return t
	}
	return extTypes[ext]
}

// CountKinds returns how many items of media are images and videos.
func CountKinds(media []Media) (images, videos int) {
	for _, m := range media {
		switch m.Kind {
		case Image:
			images++
		case Video:
			videos++
		}
	}
	return images, videos
}

// MediaLimits are what a platform takes of each kind of media.
type MediaLimits struct {
	ImageTypes, VideoTypes       []string
	MaxImageBytes, MaxVideoBytes int64
}

// Problems checks every item of media against l, in the wording of the X,
// LinkedIn, Facebook and Instagram adapters: a kind that is neither image
// nor video, then MediaProblems with the MIME type guessed with extra. name
// is the platform as messages name it.
func (l MediaLimits) Problems(media []Media, name string, extra map[string]string) []apperr.Problem {
	var probs []apperr.Problem
	for i, m := range media {
		var types []string
		var max int64
		switch m.Kind {
		case Image:
			types, max = l.ImageTypes, l.MaxImageBytes
		case Video:
			types, max = l.VideoTypes, l.MaxVideoBytes
		default:
			probs = append(probs, apperr.Problem{Field: fmt.Sprintf("media[%d].kind", i), Message: "must be image or video"})
			continue
		}
		probs = append(probs, MediaProblems(i, GuessMIME(m, extra), m.Size, types, max, name)...)
	}
	return probs
}

// MediaProblems returns the problems of media item i: a known MIME type mt
// that is not in types ("… is not accepted; <name> takes …"), then a known
// size over max.
func MediaProblems(i int, mt string, size int64, types []string, max int64, name string) []apperr.Problem {
	var probs []apperr.Problem
	field := fmt.Sprintf("media[%d]", i)
	if mt != "" && !slices.Contains(types, mt) {
		probs = append(probs, apperr.Problem{Field: field + ".mimeType", Message: fmt.Sprintf("%s is not accepted; %s takes %s", mt, name, strings.Join(types, ", "))})
	}
	if size > max {
		probs = append(probs, apperr.Problem{Field: field + ".size", Message: fmt.Sprintf("is %d bytes; the limit is %d", size, max)})
	}
	return probs
}

// KindRule is what a platform takes of one kind of media, and how its
// problems read, in the wording of the Threads, TikTok, Bluesky and
// Mastodon adapters.
type KindRule struct {
	Types    []string
	MaxBytes int64
	// Noun names the kind in "over the <Noun> limit of N bytes".
	Noun string
	// TypeProblem is the problem of a given MIME type not in Types; empty
	// reads "unsupported <Noun> type <type>".
	TypeProblem string
}

// KindProblems returns the problems of media item m, whose field is f
// ("media[0]"), against the rule of its kind: a given MIME type (none is
// guessed) not in Types, then a known size over MaxBytes; or a kind that is
// neither image nor video.
func KindProblems(f string, m Media, image, video KindRule) []apperr.Problem {
	var r KindRule
	switch m.Kind {
	case Image:
		r = image
	case Video:
		r = video
	default:
		return []apperr.Problem{{Field: f + ".kind", Message: `must be "image" or "video"`}}
	}
	var probs []apperr.Problem
	if m.MIMEType != "" && !slices.Contains(r.Types, m.MIMEType) {
		msg := r.TypeProblem
		if msg == "" {
			msg = "unsupported " + r.Noun + " type " + m.MIMEType
		}
		probs = append(probs, apperr.Problem{Field: f + ".mimeType", Message: msg})
	}
	if m.Size > r.MaxBytes {
		probs = append(probs, apperr.Problem{Field: f + ".size", Message: fmt.Sprintf("over the %s limit of %d bytes", r.Noun, r.MaxBytes)})
	}
	return probs
}
