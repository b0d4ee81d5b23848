output "sns_topic_arn" {
  description = "Notification topic (alarms and workflow results)."
  value       = aws_sns_topic.this.arn
}

output "alarm_arns" {
  description = "Alarm ARNs by purpose."
  value = {
    error_rate        = aws_cloudwatch_metric_alarm.error_rate.arn
    p99_latency       = aws_cloudwatch_metric_alarm.p99_latency.arn
    unhealthy_hosts   = aws_cloudwatch_metric_alarm.unhealthy_hosts.arn
    failed_executions = aws_cloudwatch_metric_alarm.failed_executions.arn
    drift             = aws_cloudwatch_metric_alarm.drift.arn
    low_confidence    = aws_cloudwatch_metric_alarm.low_confidence.arn
  }
}

output "retrain_rule_name" {
  description = "EventBridge rule routing model-health alarms to retrain_trigger."
  value       = aws_cloudwatch_event_rule.retrain.name
}

output "dashboard_name" {
  description = "CloudWatch dashboard name."
  value       = aws_cloudwatch_dashboard.this.dashboard_name
}
