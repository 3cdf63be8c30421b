package config

import (
	"context"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
)

func TestLoadAWS(t *testing.T) {
	t.Parallel()
	lambdaEnv := map[string]string{
		"AWS_REGION": "us-east-1", "AWS_ACCESS_KEY_ID": "ASIAEXAMPLE", "AWS_SECRET_ACCESS_KEY": "secret",
		"AWS_SESSION_TOKEN": "token",
	}
	with := func(kv ...string) map[string]string {
		m := map[string]string{}
		for k, v := range lambdaEnv {
			m[k] = v
		}
		for i := 0; i+1 < len(kv); i += 2 {
			m[kv[i]] = kv[i+1]
		}
		return m
	}
	tests := []struct {
		name         string
		env          map[string]string
		wantErr      string
		wantRegion   string
		wantEndpoint string
		wantAppID    string
	}{
		{name: "lambda environment", env: lambdaEnv, wantRegion: "us-east-1"},
		{name: "default region only", env: with("AWS_REGION", "", "AWS_DEFAULT_REGION", "eu-west-1"), wantRegion: "eu-west-1"},
		{name: "local stack", env: with("AWS_ENDPOINT_URL", "http://127.0.0.1:4566", "AWS_SDK_UA_APP_ID", "ApiFunction"),
			wantRegion: "us-east-1", wantEndpoint: "http://127.0.0.1:4566", wantAppID: "ApiFunction"},
		{name: "no region", env: with("AWS_REGION", ""), wantErr: "AWS_REGION is required"},
		{name: "no key id", env: with("AWS_ACCESS_KEY_ID", ""), wantErr: "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY are required"},
		{name: "no secret", env: with("AWS_SECRET_ACCESS_KEY", ""), wantErr: "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY are required"},
		{name: "relative endpoint", env: with("AWS_ENDPOINT_URL", "moto:4566"), wantErr: "AWS_ENDPOINT_URL"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			cfg, err := LoadAWS(env(tt.env))
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("got error %v, want one containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("got error %v", err)
			}
			if cfg.Region != tt.wantRegion {
				t.Errorf("got region %q, want %q", cfg.Region, tt.wantRegion)
			}
			if got := aws.ToString(cfg.BaseEndpoint); got != tt.wantEndpoint {
				t.Errorf("got endpoint %q, want %q", got, tt.wantEndpoint)
			}
			if cfg.AppID != tt.wantAppID {
				t.Errorf("got app id %q, want %q", cfg.AppID, tt.wantAppID)
			}
			creds, err := cfg.Credentials.Retrieve(context.Background())
			if err != nil {
				t.Fatalf("retrieve credentials: %v", err)
			}
			if creds.AccessKeyID != tt.env["AWS_ACCESS_KEY_ID"] || creds.SecretAccessKey != tt.env["AWS_SECRET_ACCESS_KEY"] || creds.SessionToken != tt.env["AWS_SESSION_TOKEN"] {
				t.Errorf("got credentials %q/%q/%q, want the environment's", creds.AccessKeyID, creds.SecretAccessKey, creds.SessionToken)
			}
		})
	}
}
