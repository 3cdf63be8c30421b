// Command rotatekeys moves every sealed secret in a POSSE table to another
// KMS key without decrypting or rewriting the secrets: it re-encrypts each
// record's data key with KMS ReEncrypt and writes it back conditionally (see
// vault.Rotator.Rotate). It prints the counts as one JSON line.
//
//	rotatekeys -table posse-dev -key alias/posse-dev-2027
//
// Region, credentials and endpoint come from the standard AWS environment
// (AWS_REGION, AWS_PROFILE, AWS_ENDPOINT_URL, ...). The caller needs
// dynamodb:Scan and dynamodb:UpdateItem on the table, kms:DescribeKey and
// kms:ReEncryptTo on the new key and kms:ReEncryptFrom on the old ones.
//
// Exit status: 0 when every record is under the key (or was changed by a
// concurrent writer, which the next run picks up), 1 when some records could
// not be rotated or the run failed, 2 for bad flags.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/kms"

	"github.com/posse-dev/posse/shared/vault"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// run is the whole command, without the process around it.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("rotatekeys", flag.ContinueOnError)
	fs.SetOutput(stderr)
	table := fs.String("table", "", "DynamoDB table to rotate (required)")
	key := fs.String("key", "", "destination KMS key: alias name, alias ARN, key id or key ARN (required)")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if *table == "" || *key == "" || fs.NArg() > 0 {
		fmt.Fprintln(stderr, "rotatekeys: -table and -key are required, and nothing else")
		fs.Usage()
		return 2
	}
	log := slog.New(slog.NewJSONHandler(stderr, nil))

	cfg, err := config.LoadDefaultConfig(ctx)
	if err != nil {
		log.Error("load AWS configuration", "error", err.Error())
		return 1
	}
	r, err := vault.NewRotator(kms.NewFromConfig(cfg), dynamodb.NewFromConfig(cfg), vault.RotatorConfig{Logger: log})
	if err != nil {
		log.Error("build rotator", "error", err.Error())
		return 1
	}
	stats, err := r.Rotate(ctx, *table, *key)
	if encErr := json.NewEncoder(stdout).Encode(stats); encErr != nil {
		err = errors.Join(err, fmt.Errorf("write counts: %w", encErr))
	}
	if err != nil {
		log.Error("rotate", "table", *table, "key", *key, "error", err.Error())
		return 1
	}
	if stats.Failed > 0 {
		log.Error("rotate: some records could not be rotated", "table", *table, "failed", stats.Failed)
		return 1
	}
	return 0
}
