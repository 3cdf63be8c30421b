package site

import (
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/feature/dynamodb/attributevalue"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/posse-dev/posse/shared/apperr"
	"github.com/posse-dev/posse/shared/llm"
)

// MaxMonthlyAIBudgetUSD bounds a site's monthly AI budget.
const MaxMonthlyAIBudgetUSD = 100_000

// Strategies order a site's provider chain.
var Strategies = []string{"cost", "latency", "quality"}

// AI is a site's AI adaptation settings, set by an admin.
type AI struct {
	// MonthlyBudgetUSD caps what AI adaptation may cost the site in a
	// calendar month (UTC); nil means the deployment's default
	// (POSSE_AI_DEFAULT_MONTHLY_BUDGET_USD) and 0 turns AI off.
	MonthlyBudgetUSD *float64 `json:"monthlyBudgetUsd" dynamodbav:"monthly_budget_usd,omitempty"`
	// Providers is the site's chain, in order; empty means every provider
	// the deployment configured, ordered by Strategy.
	Providers []llm.Name `json:"providers,omitempty" dynamodbav:"providers,omitempty"`
	// Strategy orders the chain when Providers is empty: cost, latency or
	// quality; "" means the deployment's default.
	Strategy string `json:"strategy,omitempty" dynamodbav:"strategy,omitempty"`
}

// BudgetMicros is the monthly budget in micro-USD, def when none is set.
func (a AI) BudgetMicros(def int64) int64 {
	if a.MonthlyBudgetUSD == nil {
		return def
	}
	return int64(math.Round(*a.MonthlyBudgetUSD * 1e6))
}

// Validate returns every problem of a, naming the field under "ai".
func (a AI) Validate() []apperr.Problem {
	var ps []apperr.Problem
	if b := a.MonthlyBudgetUSD; b != nil && (math.IsNaN(*b) || *b < 0 || *b > MaxMonthlyAIBudgetUSD) {
		ps = append(ps, apperr.Problem{Field: "ai.monthlyBudgetUsd", Message: fmt.Sprintf("must be a number of US dollars from 0 to %d (0 turns AI off)", MaxMonthlyAIBudgetUSD)})
	}
	seen := map[llm.Name]bool{}
	for i, p := range a.Providers {
		f := fmt.Sprintf("ai.providers[%d]", i)
		switch {
		case !p.Valid():
			names := make([]string, len(llm.All))
			for j, n := range llm.All {
				names[j] = string(n)
			}
			ps = append(ps, apperr.Problem{Field: f, Message: fmt.Sprintf("%q is not a provider; use %s", p, strings.Join(names, ", "))})
		case seen[p]:
			ps = append(ps, apperr.Problem{Field: f, Message: fmt.Sprintf("repeats %q", p)})
		}
		seen[p] = true
	}
	if a.Strategy != "" && !slices.Contains(Strategies, a.Strategy) {
		ps = append(ps, apperr.Problem{Field: "ai.strategy", Message: "must be cost, latency or quality"})
	}
	return ps
}

// Update is the body of PATCH /v1/sites/{siteId}: the fields an admin may
// change after creation.
type Update struct {
	AI *AI `json:"ai"`
}

// SetAI replaces a site's AI settings and returns the site.
func (s *Store) SetAI(ctx context.Context, id string, a AI) (Site, error) {
	if ps := a.Validate(); len(ps) > 0 {
		return Site{}, apperr.InvalidProblems(ps)
	}
	v, err := attributevalue.Marshal(a)
	if err != nil {
		return Site{}, fmt.Errorf("marshal AI settings of site %s: %w", id, err)
	}
	out, err := s.db.UpdateItem(ctx, &dynamodb.UpdateItemInput{
		TableName:                 &s.table,
		Key:                       map[string]types.AttributeValue{"PK": str("SITE#" + id), "SK": str("META")},
		UpdateExpression:          aws.String("SET ai = :ai"),
		ConditionExpression:       aws.String("attribute_exists(PK)"),
		ExpressionAttributeValues: map[string]types.AttributeValue{":ai": v},
		ReturnValues:              types.ReturnValueAllNew,
	})
	var ccf *types.ConditionalCheckFailedException
	if errors.As(err, &ccf) {
		return Site{}, apperr.NotFound("site")
	}
	if err != nil {
		return Site{}, fmt.Errorf("set AI settings of site %s: %w", id, err)
	}
	var site Site
	if err := attributevalue.UnmarshalMap(out.Attributes, &site); err != nil {
		return Site{}, fmt.Errorf("unmarshal site %s: %w", id, err)
	}
	return site, nil
}
