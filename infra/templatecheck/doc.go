// Package templatecheck holds the tests that read template.yaml and fail
// when a rule of the design stops holding: least privilege per function (the
// api function never gets kms:Decrypt), the Lambda runtime settings every
// function shares, and the queue settings that make redrive safe.
package templatecheck
