// Package templatecheck holds the tests that read template.yaml and fail
// when a rule of the design stops holding: least privilege per function (the
// api function never gets kms:Decrypt), the Lambda runtime settings every
// function shares, the queue settings that make redrive safe, and a
// dashboard and alarms that read the metrics shared/metrics records, with
// their exact dimensions, for every queue and function.
package templatecheck
