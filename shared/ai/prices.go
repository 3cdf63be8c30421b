package ai

import (
	"bytes"
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/posse-dev/posse/shared/llm"
)

//go:embed prices.json
var defaultPricesJSON []byte

// Price is one model's list price. Prices are kept in micro-USD per
// million tokens (USD per MTok × 1,000,000), so every cost is integer math.
type Price struct {
	Provider llm.Name
	Model    string
	// InputMicrosPerMTok and OutputMicrosPerMTok are the prices of a
	// million input and output tokens in micro-USD.
	InputMicrosPerMTok  int64
	OutputMicrosPerMTok int64
	// Source is the URL of the provider's pricing page; Date when the
	// price was read.
	Source string
	Date   string
}

// PriceTable holds the prices the router charges calls at. The zero value
// is empty; Config.Prices left zero means DefaultPrices.
type PriceTable struct {
	prices []Price // sorted by provider, then model
}

// priceRow is one row of prices.json and of a configured override. Prices
// are USD per million tokens, as providers publish them.
type priceRow struct {
	Provider      llm.Name    `json:"provider"`
	Model         string      `json:"model"`
	InputPerMTok  json.Number `json:"inputPerMTok"`
	OutputPerMTok json.Number `json:"outputPerMTok"`
	Source        string      `json:"source,omitempty"`
	Date          string      `json:"date,omitempty"`
	Note          string      `json:"note,omitempty"`
}

// DefaultPrices returns the embedded price table (prices.json): a cheap
// default model of each provider.
func DefaultPrices() PriceTable {
	rows, err := parseRows(defaultPricesJSON)
	if err != nil {
		panic("ai: embedded prices.json: " + err.Error()) // a build defect, caught by the tests
	}
	return PriceTable{prices: rows}
}

// ParsePrices returns DefaultPrices with the rows of s (a JSON array of
// {"provider","model","inputPerMTok","outputPerMTok"} with prices in USD
// per million tokens, at most 6 decimals) added or replacing the rows of
// the same provider and model. An empty s gives the defaults.
func ParsePrices(s string) (PriceTable, error) {
	t := DefaultPrices()
	if strings.TrimSpace(s) == "" {
		return t, nil
	}
	rows, err := parseRows([]byte(s))
	if err != nil {
		return PriceTable{}, fmt.Errorf("parse AI prices: %w", err)
	}
	for _, r := range rows {
		i := slices.IndexFunc(t.prices, func(p Price) bool { return p.Provider == r.Provider && p.Model == r.Model })
		if i >= 0 {
			t.prices[i] = r
		} else {
			t.prices = append(t.prices, r)
		}
	}
	sortPrices(t.prices)
	return t, nil
}

func parseRows(b []byte) ([]Price, error) {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	var rows []priceRow
	if err := dec.Decode(&rows); err != nil {
		return nil, err
	}
	out := make([]Price, 0, len(rows))
	seen := map[string]bool{}
	for i, r := range rows {
		where := fmt.Sprintf("row %d", i)
		if !r.Provider.Valid() {
			return nil, fmt.Errorf("%s: provider %q is not one of %v", where, r.Provider, llm.All)
		}
		if strings.TrimSpace(r.Model) == "" {
			return nil, fmt.Errorf("%s: model is required", where)
		}
		k := string(r.Provider) + "\x00" + r.Model
		if seen[k] {
			return nil, fmt.Errorf("%s: %s %s is listed twice", where, r.Provider, r.Model)
		}
		seen[k] = true
		in, err := parseMicros(r.InputPerMTok)
		if err != nil {
			return nil, fmt.Errorf("%s: inputPerMTok: %w", where, err)
		}
		outP, err := parseMicros(r.OutputPerMTok)
		if err != nil {
			return nil, fmt.Errorf("%s: outputPerMTok: %w", where, err)
		}
		out = append(out, Price{Provider: r.Provider, Model: r.Model, InputMicrosPerMTok: in, OutputMicrosPerMTok: outP, Source: r.Source, Date: r.Date})
	}
	sortPrices(out)
	return out, nil
}

func sortPrices(ps []Price) {
	slices.SortFunc(ps, func(a, b Price) int {
		if c := strings.Compare(string(a.Provider), string(b.Provider)); c != 0 {
			return c
		}
		return strings.Compare(a.Model, b.Model)
	})
}

// maxPriceMicros bounds a price (10,000 USD per MTok) so that costs cannot
// overflow int64.
const maxPriceMicros = 10_000 * 1_000_000

// parseMicros turns a decimal number of USD into micro-USD exactly: "0.0375"
// is 37500. It accepts at most 6 decimals and no exponent.
func parseMicros(n json.Number) (int64, error) {
	s := string(n)
	if s == "" {
		return 0, errors.New("is required")
	}
	whole, frac, _ := strings.Cut(s, ".")
	if strings.HasPrefix(whole, "-") {
		return 0, fmt.Errorf("%s is negative", s)
	}
	if len(frac) > 6 {
		return 0, fmt.Errorf("%s has more than 6 decimals", s)
	}
	w, err := strconv.ParseInt(whole, 10, 64)
	if err != nil || whole == "" {
		return 0, fmt.Errorf("%s is not a plain decimal number", s)
	}
	f := int64(0)
	if frac != "" {
		f, err = strconv.ParseInt(frac+strings.Repeat("0", 6-len(frac)), 10, 64)
		if err != nil || strings.ContainsAny(frac, "+-") {
			return 0, fmt.Errorf("%s is not a plain decimal number", s)
		}
	}
	if w > maxPriceMicros/1_000_000 {
		return 0, fmt.Errorf("%s is over %d", s, maxPriceMicros/1_000_000)
	}
	return w*1_000_000 + f, nil
}

// Prices returns the table's rows, sorted by provider and model.
func (t PriceTable) Prices() []Price { return slices.Clone(t.prices) }

// Lookup returns the price of a provider's model. A dated snapshot
// ("claude-haiku-4-5-20251001", "gpt-4.1-nano-2025-04-14") or a "models/"
// prefix (Gemini) finds the row of its base name.
func (t PriceTable) Lookup(p llm.Name, model string) (Price, bool) {
	model = strings.TrimPrefix(model, "models/")
	best, found := Price{}, false
	for _, r := range t.prices {
		if r.Provider != p {
			continue
		}
		if r.Model == model {
			return r, true
		}
		if strings.HasPrefix(model, r.Model+"-") && len(r.Model) > len(best.Model) {
			best, found = r, true
		}
	}
	return best, found
}

// priceFor returns the price to charge a call of p's model at: the model's
// own, or else the most expensive input and output prices listed for p (or
// for any provider when p has none), flagged estimated.
func (t PriceTable) priceFor(p llm.Name, model string) (Price, bool) {
	if pr, ok := t.Lookup(p, model); ok {
		return pr, false
	}
	worst := Price{Provider: p, Model: model}
	listed := false
	for pass := 0; pass < 2 && !listed; pass++ {
		for _, r := range t.prices {
			if pass == 0 && r.Provider != p {
				continue
			}
			listed = true
			worst.InputMicrosPerMTok = max(worst.InputMicrosPerMTok, r.InputMicrosPerMTok)
			worst.OutputMicrosPerMTok = max(worst.OutputMicrosPerMTok, r.OutputMicrosPerMTok)
		}
	}
	return worst, true
}

// Cost returns the cost in micro-USD of a call of p's model that used in
// input and out output tokens, rounded up: ceil(in×input + out×output) at
// the table's prices. estimated is true when the model is not in the
// table and the provider's most expensive listed price was charged.
func (t PriceTable) Cost(p llm.Name, model string, in, out int) (micros int64, estimated bool) {
	pr, est := t.priceFor(p, model)
	return costOf(pr, in, out), est
}

// costOf is ceil((in×input + out×output) / 1e6) in micro-USD.
func costOf(pr Price, in, out int) int64 {
	n := int64(max(in, 0))*pr.InputMicrosPerMTok + int64(max(out, 0))*pr.OutputMicrosPerMTok
	return (n + 999_999) / 1_000_000
}
