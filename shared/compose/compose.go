// Package compose turns a post snapshot and a target's defaults into the
// text one delivery publishes, deterministically: the same snapshot,
// defaults, custom message and platform limit always give the same words.
// It also keeps the post snapshots themselves (see Snapshots).
//
// # Composition
//
// The target's message template (target.DefaultTemplate when it sets none)
// is filled in:
//
//	{title}     the post's title
//	{excerpt}   the post's excerpt
//	{message}   the dispatch's customMessage, or the excerpt when there is none
//	{url}       the post's URL with the target's UTM parameters, when the
//	            target includes the link; empty otherwise
//	{hashtags}  the target's hashtags, "#a #b"
//
// A custom message given to a template without {message} is put first, as
// its own paragraph; an included link or hashtags a template does not place
// are appended, each as its own paragraph, so no part of the dispatch is
// silently lost. Lines are right-trimmed, runs of blank lines become one
// and the text is trimmed.
//
// # Fitting
//
// The text is fitted to the platform's limit (text.Limit from the adapter's
// Capabilities: its counting rule, maximum and byte cap). The link is never
// cut: the text before the link is shortened first (at a word boundary,
// with an ellipsis, by text.Limit.Fit), then the text after it; only if the
// link alone is over the limit is it returned alone, for the adapter's
// Validate to reject.
package compose

import (
	"strings"
	"unicode"

	"github.com/posse-dev/posse/shared/platform"
	"github.com/posse-dev/posse/shared/target"
	"github.com/posse-dev/posse/shared/text"
)

// Input is what one delivery's text is composed from.
type Input struct {
	Post          Post
	CustomMessage string
	Defaults      target.Defaults
}

// Result is a composed delivery.
type Result struct {
	// Text is fitted to the limit and holds Link when the target includes it.
	Text string
	// Link is the post's URL with the UTM parameters when the target
	// includes the link, else "" (adapters then add no link card).
	Link string
}

// LimitOf is the text limit a platform's capabilities declare.
func LimitOf(c platform.Capabilities) text.Limit {
	return text.Limit{Rule: c.CountRule, Max: c.TextLimit, MaxBytes: c.ByteLimit}
}

// linkMark stands for the link while the template is filled in and tidied:
// it holds no white space, so tidying cannot touch it.
const linkMark = "\x00link\x00"

// Compose returns the text of in for a platform with limit lim.
func Compose(in Input, lim text.Limit) Result {
	d := in.Defaults
	link := ""
	if d.IncludeLink && in.Post.URL != "" {
		link = target.TaggedLink(in.Post.URL, d.UTM)
	}
	tags := make([]string, 0, len(d.Hashtags))
	for _, h := range d.Hashtags {
		tags = append(tags, "#"+h)
	}
	hashtags := strings.Join(tags, " ")
	custom := clean(in.CustomMessage)
	message := custom
	if message == "" {
		message = clean(in.Post.Excerpt)
	}

	tpl := strings.ReplaceAll(d.Template(), "\r\n", "\n")
	if custom != "" && !strings.Contains(tpl, "{message}") {
		tpl = "{message}\n\n" + tpl
	}
	if link != "" && !strings.Contains(tpl, "{url}") {
		tpl += "\n\n{url}"
	}
	if hashtags != "" && !strings.Contains(tpl, "{hashtags}") {
		tpl += "\n\n{hashtags}"
	}
	// One pass, so a value holding "{url}" is never filled in again.
	urlValue := ""
	if link != "" {
		urlValue = linkMark
	}
	filled := strings.NewReplacer(
		"{title}", clean(in.Post.Title),
		"{excerpt}", clean(in.Post.Excerpt),
		"{message}", message,
		"{url}", urlValue,
		"{hashtags}", hashtags,
	).Replace(tpl)
	filled = tidy(filled)

	before, after, found := strings.Cut(filled, linkMark)
	if !found {
		return Result{Text: lim.Fit(filled)}
	}
	// Only the first {url} is the protected link; later ones are plain text.
	after = strings.ReplaceAll(after, linkMark, link)
	return Result{Text: fitAround(lim, before, link, after), Link: link}
}

// clean drops control characters other than newlines and tabs, and
// normalises line ends.
func clean(s string) string {
	s = strings.ReplaceAll(s, "\r\n", "\n")
	return strings.Map(func(r rune) rune {
		if r == '\n' || r == '\t' || !unicode.IsControl(r) {
			return r
		}
		return -1
	}, strings.TrimSpace(s))
}

// tidy right-trims every line, turns runs of blank lines into one and trims
// the text.
func tidy(s string) string {
	lines := strings.Split(s, "\n")
	out := make([]string, 0, len(lines))
	blank := false
	for _, l := range lines {
		l = strings.TrimRightFunc(l, unicode.IsSpace)
		if l == "" {
			if !blank && len(out) > 0 {
				out = append(out, "")
			}
			blank = true
			continue
		}
		blank = false
		out = append(out, l)
	}
	return strings.TrimSpace(strings.Join(out, "\n"))
}

// fitAround fits before+link+after to lim without cutting link: before is
// shortened first, then after.
func fitAround(lim text.Limit, before, link, after string) string {
	if whole := before + link + after; lim.Fits(whole) {
		return whole
	}
	content, sep := splitTrailingSpace(before)
	if s, ok := shrink(lim, content, func(c string) string {
		if c == "" {
			return link + after
		}
		return c + sep + link + after
	}); ok {
		return s
	}
	lead, rest := splitLeadingSpace(after)
	if s, ok := shrink(lim, rest, func(c string) string {
		if c == "" {
			return link
		}
		return link + lead + c
	}); ok {
		return s
	}
	return link
}

// shrink finds the longest fitted prefix of content (by text.Limit.Fit)
// for which assemble(prefix) fits lim; "" is tried last.
func shrink(lim text.Limit, content string, assemble func(string) string) (string, bool) {
	if content != "" {
		fixed := assemble("")
		max := lim.Max - lim.Count(fixed)
		maxBytes := 0
		if lim.MaxBytes > 0 {
			maxBytes = lim.MaxBytes - len(fixed)
		}
		for max > 0 && (lim.MaxBytes == 0 || maxBytes > 0) {
			c := text.Limit{Rule: lim.Rule, Max: max, MaxBytes: maxBytes}.Fit(content)
			if c == "" {
				break
			}
			s := assemble(c)
			if lim.Fits(s) {
				return s, true
			}
			// The parts do not add up exactly (X counts a URL by its
			// context, graphemes join at the seam): take off the excess.
			over := lim.Count(s) - lim.Max
			if over < 1 {
				over = 1
			}
			max -= over
			if lim.MaxBytes > 0 && len(s) > lim.MaxBytes {
				maxBytes -= len(s) - lim.MaxBytes
			}
		}
	}
	s := assemble("")
	return s, lim.Fits(s)
}

func splitTrailingSpace(s string) (string, string) {
	t := strings.TrimRightFunc(s, unicode.IsSpace)
	return t, s[len(t):]
}

func splitLeadingSpace(s string) (string, string) {
	t := strings.TrimLeftFunc(s, unicode.IsSpace)
	return s[:len(s)-len(t)], t
}
