// Package secretscan proves that no secret a local stack run handled is at
// rest in the clear: it gathers the run's secrets — every credential the
// simulators issued or accept (the runner's GET /_local/secrets), the keys a
// test knows, and everything sealed in the table (opened with KMS, with the
// plaintext data keys themselves) — and searches every log file and every
// item of a full DynamoDB Scan for them, raw and in the encodings a log or
// an item could carry them in (URL query escaping, base64, hex).
//
// Findings name where a secret was found and which kind it is, never the
// secret itself.
package secretscan

import (
	"bufio"
	"context"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"sort"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/feature/dynamodb/attributevalue"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/aws/aws-sdk-go-v2/service/kms"

	"github.com/posse-dev/posse/shared/vault"
)

// MinLength is the shortest value treated as a secret: shorter strings
// (a user id, "true") would match by chance.
const MinLength = 12

// Secret is one value that must not be found, with a label saying what it
// is ("simulator", "admin key", "data key", "sealed oauth_tokens").
type Secret struct {
	Kind  string
	Value string
}

// Set is the secrets of a run.
type Set struct {
	byValue map[string]string // value → kind
}

// NewSet returns an empty set.
func NewSet() *Set { return &Set{byValue: map[string]string{}} }

// Add adds values of kind; values shorter than MinLength are ignored.
func (s *Set) Add(kind string, values ...string) {
	for _, v := range values {
		if len(v) >= MinLength {
			if _, ok := s.byValue[v]; !ok {
				s.byValue[v] = kind
			}
		}
	}
}

// Len is the number of distinct secrets.
func (s *Set) Len() int { return len(s.byValue) }

// Kinds counts the secrets by kind.
func (s *Set) Kinds() map[string]int {
	out := map[string]int{}
	for _, k := range s.byValue {
		out[k]++
	}
	return out
}

// matcher finds any of many needles in a text in one pass: needles are
// indexed by their first prefixLen bytes (every needle is at least
// MinLength long), so each position of the text costs one map lookup.
type matcher map[string][]needle

type needle struct{ value, kind string }

const prefixLen = 8

// matcher indexes the secrets and their encodings (URL query escaping,
// JSON string escaping).
func (s *Set) matcher() matcher {
	m := matcher{}
	add := func(v, kind string) {
		if len(v) < prefixLen {
			return
		}
		m[v[:prefixLen]] = append(m[v[:prefixLen]], needle{v, kind})
	}
	for v, kind := range s.byValue {
		add(v, kind)
		if q := url.QueryEscape(v); q != v {
			add(q, kind)
		}
		if j, _ := json.Marshal(v); string(j[1:len(j)-1]) != v {
			add(string(j[1:len(j)-1]), kind)
		}
	}
	return m
}

// find returns the kinds of the needles text contains.
func (m matcher) find(text string) []string {
	var kinds []string
	for i := 0; i+prefixLen <= len(text); i++ {
		for _, n := range m[text[i:i+prefixLen]] {
			if strings.HasPrefix(text[i:], n.value) {
				kinds = append(kinds, n.kind)
			}
		}
	}
	return kinds
}

// Finding is one secret found at rest: Where names the file and line or
// the item's keys and attribute; Kind is the secret's kind.
type Finding struct {
	Where string
	Kind  string
}

// String implements fmt.Stringer; it never includes the secret.
func (f Finding) String() string { return f.Kind + " in " + f.Where }

// FromRunner adds every credential the local runner's simulators issued or
// accept (GET <simURL>/_local/secrets).
func (s *Set) FromRunner(ctx context.Context, simURL string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, simURL+"/_local/secrets", nil)
	if err != nil {
		return fmt.Errorf("read the runner's secrets: %w", err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("read the runner's secrets: %w", err)
	}
	defer resp.Body.Close()
	var out struct {
		Secrets []string `json:"secrets"`
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("read the runner's secrets: HTTP %d", resp.StatusCode)
	}
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		return fmt.Errorf("read the runner's secrets: %w", err)
	}
	s.Add("simulator credential", out.Secrets...)
	return nil
}

// Scanner reads the table and opens what is sealed in it.
type Scanner struct {
	DB    *dynamodb.Client
	KMS   *kms.Client
	Table string
}

// scan reads every item of the table (a full Scan, every page).
func (sc Scanner) scan(ctx context.Context) ([]map[string]types.AttributeValue, error) {
	var items []map[string]types.AttributeValue
	p := dynamodb.NewScanPaginator(sc.DB, &dynamodb.ScanInput{TableName: aws.String(sc.Table)})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return nil, fmt.Errorf("scan %s: %w", sc.Table, err)
		}
		items = append(items, page.Items...)
	}
	return items, nil
}

// AddSealed opens every sealed record of the table (attributes named
// sealed_*) and adds its data key (raw, base64, hex) and the strings of its
// plaintext to s. It returns how many records it opened.
func (sc Scanner) AddSealed(ctx context.Context, s *Set) (int, error) {
	items, err := sc.scan(ctx)
	if err != nil {
		return 0, err
	}
	opener, err := vault.NewOpener(sc.KMS, vault.Config{CacheSize: -1})
	if err != nil {
		return 0, err
	}
	n := 0
	for _, item := range items {
		for name, av := range item {
			if !strings.HasPrefix(name, "sealed_") {
				continue
			}
			if _, ok := av.(*types.AttributeValueMemberM); !ok {
				continue
			}
			var rec vault.Sealed
			if err := attributevalue.Unmarshal(av, &rec); err != nil {
				return n, fmt.Errorf("read %s of %s: %w", name, keyOf(item), err)
			}
			c := vault.Context{Site: rec.Context[vault.ContextSite], Connection: rec.Context[vault.ContextConnection], Purpose: rec.Context[vault.ContextPurpose]}
			out, err := sc.KMS.Decrypt(ctx, &kms.DecryptInput{CiphertextBlob: rec.EncryptedKey, EncryptionContext: rec.Context})
			if err != nil {
				return n, fmt.Errorf("decrypt the data key of %s of %s: %w", name, keyOf(item), err)
			}
			key := out.Plaintext
			s.Add("data key", string(key), base64.StdEncoding.EncodeToString(key), base64.RawStdEncoding.EncodeToString(key),
				base64.RawURLEncoding.EncodeToString(key), base64.URLEncoding.EncodeToString(key), hex.EncodeToString(key))
			plain, err := opener.Open(ctx, c, rec)
			if err != nil {
				return n, fmt.Errorf("open %s of %s: %w", name, keyOf(item), err)
			}
			s.Add("sealed "+c.Purpose, plaintextStrings(plain)...)
			n++
		}
	}
	return n, nil
}

// plaintextStrings is the secret strings of a sealed plaintext: the values
// of a JSON object's fields whose names say they are secret (access_token,
// refresh_token, client_secret, password, verifier, ...), or the plaintext
// itself when it is not a JSON object (a webhook secret, a PKCE verifier).
// The object's other fields (scopes, account ids, URLs) are stored in the
// clear on purpose.
func plaintextStrings(b []byte) []string {
	var obj map[string]any
	if err := json.Unmarshal(b, &obj); err != nil {
		return []string{string(b)}
	}
	var out []string
	var walk func(name string, v any)
	walk = func(name string, v any) {
		switch t := v.(type) {
		case string:
			if secretName(name) {
				out = append(out, t)
			}
		case []any:
			for _, e := range t {
				walk(name, e)
			}
		case map[string]any:
			for k, e := range t {
				walk(k, e)
			}
		}
	}
	walk("", obj)
	return out
}

// secretName reports a field name that holds a secret.
func secretName(name string) bool {
	n := strings.ToLower(name)
	for _, w := range []string{"token", "secret", "password", "verifier", "jwt", "key"} {
		if strings.Contains(n, w) {
			return true
		}
	}
	return false
}

// ScanTable searches every item (a full Scan) for the secrets. It returns
// the number of items read and the findings.
func (sc Scanner) ScanTable(ctx context.Context, s *Set) (int, []Finding, error) {
	items, err := sc.scan(ctx)
	if err != nil {
		return 0, nil, err
	}
	m := s.matcher()
	var found []Finding
	for _, item := range items {
		for name, av := range item {
			for _, text := range values(av) {
				for _, kind := range m.find(text) {
					found = append(found, Finding{Where: "item " + keyOf(item) + " attribute " + name, Kind: kind})
				}
			}
		}
	}
	return len(items), found, nil
}

// values lists the strings and binaries of an attribute, nested ones too.
func values(av types.AttributeValue) []string {
	switch t := av.(type) {
	case *types.AttributeValueMemberS:
		return []string{t.Value}
	case *types.AttributeValueMemberB:
		return []string{string(t.Value)}
	case *types.AttributeValueMemberSS:
		return t.Value
	case *types.AttributeValueMemberBS:
		out := make([]string, len(t.Value))
		for i, b := range t.Value {
			out[i] = string(b)
		}
		return out
	case *types.AttributeValueMemberL:
		var out []string
		for _, e := range t.Value {
			out = append(out, values(e)...)
		}
		return out
	case *types.AttributeValueMemberM:
		var out []string
		for k, e := range t.Value {
			out = append(out, k)
			out = append(out, values(e)...)
		}
		return out
	}
	return nil
}

// keyOf names an item by its keys (PK/SK), which hold no secret.
func keyOf(item map[string]types.AttributeValue) string {
	pk, sk := "", ""
	if v, ok := item["PK"].(*types.AttributeValueMemberS); ok {
		pk = v.Value
	}
	if v, ok := item["SK"].(*types.AttributeValueMemberS); ok {
		sk = v.Value
	}
	return pk + "|" + sk
}

// ScanFiles searches every line of the files for the secrets. It returns
// the number of lines read and the findings.
func ScanFiles(paths []string, s *Set) (int, []Finding, error) {
	m := s.matcher()
	lines := 0
	var found []Finding
	for _, p := range paths {
		f, err := os.Open(p)
		if err != nil {
			return lines, found, fmt.Errorf("scan %s: %w", p, err)
		}
		n, fs, err := m.scan(p, f)
		f.Close()
		lines += n
		found = append(found, fs...)
		if err != nil {
			return lines, found, err
		}
	}
	return lines, found, nil
}

// ScanText searches text (a process's captured output) named name.
func ScanText(name, text string, s *Set) (int, []Finding) {
	n, found, _ := s.matcher().scan(name, strings.NewReader(text))
	return n, found
}

// scan searches r line by line.
func (m matcher) scan(name string, r io.Reader) (int, []Finding, error) {
	br := bufio.NewReaderSize(r, 1<<16)
	lines := 0
	var found []Finding
	for {
		line, err := br.ReadBytes('\n')
		if len(line) > 0 {
			lines++
			for _, kind := range m.find(string(line)) {
				found = append(found, Finding{Where: fmt.Sprintf("%s line %d", name, lines), Kind: kind})
			}
		}
		if err == io.EOF {
			return lines, found, nil
		}
		if err != nil {
			return lines, found, fmt.Errorf("scan %s: %w", name, err)
		}
	}
}

// Summary renders findings grouped by kind, for a report.
func Summary(found []Finding) string {
	if len(found) == 0 {
		return "none"
	}
	by := map[string]int{}
	for _, f := range found {
		by[f.Kind]++
	}
	keys := make([]string, 0, len(by))
	for k := range by {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = fmt.Sprintf("%s %d", k, by[k])
	}
	return strings.Join(parts, ", ")
}
