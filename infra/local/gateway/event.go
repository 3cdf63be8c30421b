package gateway

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"mime"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/aws/aws-lambda-go/events"
)

// event builds the payload format 2.0 event for a request, as API Gateway
// does: rawPath keeps the stage prefix of a named stage, header names are
// lower case with repeated headers joined by commas, cookies move out of the
// headers into their own list, repeated query parameters are joined by
// commas, and a body that is not text is base64-encoded.
func (g *Gateway) event(r *http.Request, a *api, rt *route, params map[string]string, body []byte, reqID string, now time.Time) ([]byte, error) {
	headers := map[string]string{}
	names := make([]string, 0, len(r.Header))
	for k := range r.Header {
		names = append(names, k)
	}
	sort.Strings(names)
	var cookies []string
	for _, k := range names {
		lk := strings.ToLower(k)
		if lk == "cookie" {
			for _, line := range r.Header[k] {
				for _, c := range strings.Split(line, ";") {
					if c = strings.TrimSpace(c); c != "" {
						cookies = append(cookies, c)
					}
				}
			}
			continue
		}
		if prev, ok := headers[lk]; ok {
			headers[lk] = prev + "," + strings.Join(r.Header[k], ",")
		} else {
			headers[lk] = strings.Join(r.Header[k], ",")
		}
	}
	headers["host"] = r.Host
	if len(body) > 0 {
		headers["content-length"] = strconv.Itoa(len(body))
	}
	ip := sourceIP(r)
	if xff, ok := headers["x-forwarded-for"]; ok {
		headers["x-forwarded-for"] = xff + ", " + ip
	} else {
		headers["x-forwarded-for"] = ip
	}
	headers["x-forwarded-port"] = localPort(r)
	headers["x-forwarded-proto"] = "http"
	if _, ok := headers["x-amzn-trace-id"]; !ok {
		headers["x-amzn-trace-id"] = traceID(now)
	}

	var query map[string]string
	if r.URL.RawQuery != "" {
		query = map[string]string{}
		for _, pair := range strings.Split(r.URL.RawQuery, "&") {
			if pair == "" {
				continue
			}
			k, v, _ := strings.Cut(pair, "=")
			k, v = queryUnescape(k), queryUnescape(v)
			if prev, ok := query[k]; ok {
				query[k] = prev + "," + v
			} else {
				query[k] = v
			}
		}
	}

	ev := events.APIGatewayV2HTTPRequest{
		Version:               "2.0",
		RouteKey:              rt.key(),
		RawPath:               r.URL.EscapedPath(),
		RawQueryString:        r.URL.RawQuery,
		Cookies:               cookies,
		Headers:               headers,
		QueryStringParameters: query,
		RequestContext: events.APIGatewayV2HTTPRequestContext{
			RouteKey:     rt.key(),
			AccountID:    g.opts.AccountID,
			Stage:        a.stage,
			RequestID:    reqID,
			APIID:        a.id,
			DomainName:   hostOnly(r.Host),
			DomainPrefix: domainPrefix(r.Host, a.id),
			Time:         now.UTC().Format("02/Jan/2006:15:04:05 -0700"),
			TimeEpoch:    now.UnixMilli(),
			HTTP: events.APIGatewayV2HTTPRequestContextHTTPDescription{
				Method:    r.Method,
				Path:      r.URL.Path,
				Protocol:  r.Proto,
				SourceIP:  ip,
				UserAgent: r.UserAgent(),
			},
		},
	}
	if len(params) > 0 {
		ev.PathParameters = params
	}
	if len(body) > 0 {
		if isText(r.Header.Get("Content-Type"), body) {
			ev.Body = string(body)
		} else {
			ev.Body = base64.StdEncoding.EncodeToString(body)
			ev.IsBase64Encoded = true
		}
	}
	b, err := json.Marshal(ev)
	if err != nil {
		return nil, fmt.Errorf("encode event: %w", err)
	}
	return b, nil
}

func queryUnescape(s string) string {
	if u, err := url.QueryUnescape(s); err == nil {
		return u
	}
	return s
}

func hostOnly(hostport string) string {
	if i := strings.LastIndexByte(hostport, ':'); i > 0 && !strings.HasSuffix(hostport, "]") {
		return hostport[:i]
	}
	return hostport
}

// domainPrefix is the first label of the host name, or the API id when the
// host is an IP address (as for the local gateway).
func domainPrefix(hostport, apiID string) string {
	h := hostOnly(hostport)
	if h == "" || strings.Trim(h, "0123456789.") == "" || strings.HasPrefix(h, "[") {
		return apiID
	}
	first, _, _ := strings.Cut(h, ".")
	return first
}

// isText decides whether API Gateway passes a body as text: text/*, JSON,
// XML and JavaScript media types with valid UTF-8. Everything else
// (including form posts and bodies without a Content-Type) is base64.
func isText(contentType string, body []byte) bool {
	if contentType == "" || !utf8.Valid(body) {
		return false
	}
	mt, _, err := mime.ParseMediaType(contentType)
	if err != nil {
		return false
	}
	switch {
	case strings.HasPrefix(mt, "text/"),
		mt == "application/json", strings.HasSuffix(mt, "+json"),
		mt == "application/xml", strings.HasSuffix(mt, "+xml"),
		mt == "application/javascript", mt == "application/graphql":
		return true
	}
	return false
}
