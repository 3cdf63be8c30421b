// Package mototest gives integration tests one moto_server per test binary.
//
// In TestMain: os.Exit(mototest.Main(m)). In a test: srv := mototest.Server(t).
// When moto is not installed the integration tests skip, unless
// POSSE_INTEGRATION=1 (set by `make test`), where they fail instead: CI never
// passes by skipping them.
package mototest

import (
	"context"
	"fmt"
	"os"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"

	"github.com/posse-dev/posse/infra/local/moto"
)

var (
	srv      *moto.Server
	startErr error
)

// Main starts moto (when installed), runs the tests and stops moto.
func Main(m *testing.M) int {
	srv, startErr = moto.Start(context.Background(), moto.Options{})
	if startErr == nil {
		defer srv.Close()
	}
	return m.Run()
}

// Required reports whether integration tests must run (POSSE_INTEGRATION=1).
func Required() bool { return os.Getenv("POSSE_INTEGRATION") == "1" }

// Server returns the test binary's moto server, skipping (or, when
// integration is required, failing) the test when it did not start.
func Server(t testing.TB) *moto.Server {
	t.Helper()
	if srv == nil {
		err := startErr
		if err == nil {
			err = fmt.Errorf("mototest.Main was not called from TestMain")
		}
		if Required() {
			t.Fatalf("moto is required (POSSE_INTEGRATION=1): %v", err)
		}
		t.Skipf("integration test skipped: %v", err)
	}
	return srv
}

// Config returns an AWS configuration for the test binary's moto server.
func Config(t testing.TB) aws.Config {
	return moto.Config(Server(t).Endpoint())
}
