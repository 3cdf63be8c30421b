package stats

import (
	"strconv"
	"testing"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
)

func item(attrs map[string]int64) map[string]types.AttributeValue {
	it := map[string]types.AttributeValue{}
	for k, v := range attrs {
		it[k] = &types.AttributeValueMemberN{Value: strconv.FormatInt(v, 10)}
	}
	return it
}

func TestEngagementSumsAndRate(t *testing.T) {
	t.Parallel()
	// X gives views; Bluesky does not: its likes count in the sums, not in
	// the rate.
	x := engagementOf(item(map[string]int64{"eng_posts": 2, "eng_posts_views": 2, "eng_views": 1000, "eng_posts_likes": 2, "eng_likes": 40, "eng_posts_reposts": 2, "eng_reposts": 10}))
	bsky := engagementOf(item(map[string]int64{"eng_posts": 1, "eng_posts_likes": 1, "eng_likes": 7}))
	var total Totals
	total.add(Totals{Engagement: x})
	total.add(Totals{Engagement: bsky})
	total.finish()
	e := total.Engagement
	if e.Posts != 3 || e.Figures["likes"] != 47 || e.Figures["views"] != 1000 || e.Interactions != 57 {
		t.Errorf("sums: got %+v, want 3 posts, 47 likes, 1000 views, 57 interactions", e)
	}
	if _, ok := e.Figures["clicks"]; ok {
		t.Errorf("clicks: got present, want absent (no platform gave it)")
	}
	if e.Rate == nil || *e.Rate != 0.05 {
		t.Errorf("rate: got %v, want 50/1000 = 0.05 (X's interactions per X's views)", e.Rate)
	}
	var none Totals
	none.finish()
	if none.Engagement.Rate != nil {
		t.Errorf("rate without views: got %v, want null", *none.Engagement.Rate)
	}
}
