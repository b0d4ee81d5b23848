output "sns_topic_arn" {
  description = "Notification topic (alarms and workflow results)."
  value       = aws_sns_topic.this.arn
}

output "alarm_arns" {
  description = "Alarm ARNs by purpose."
  value       = local.alarm_arns
}

output "retrain_rule_name" {
  description = "EventBridge rule routing model-health alarms to retrain_trigger."
  value       = aws_cloudwatch_event_rule.retrain.name
}

output "dashboard_name" {
  description = "CloudWatch dashboard name."
  value       = var.name
}
