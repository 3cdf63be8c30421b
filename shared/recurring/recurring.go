// Package recurring is the payload the recurring EventBridge schedules of
// template.yaml (refresh, sweep) invoke their functions with: the schedule's
// Input, with Scheduler's context attributes filled in.
package recurring

// Event is one fire of a recurring schedule.
type Event struct {
	Source        string `json:"source"`
	ScheduleARN   string `json:"scheduleArn"`
	ScheduledTime string `json:"scheduledTime"`
	ExecutionID   string `json:"executionId"`
	AttemptNumber string `json:"attemptNumber"`
}
