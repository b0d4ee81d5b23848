data "aws_caller_identity" "current" {}
data "aws_region" "current" {}
data "aws_partition" "current" {}

locals {
  alb_dimensions = {
    LoadBalancer = var.alb_arn_suffix
    TargetGroup  = var.target_group_arn_suffix
  }
  service_dimensions = { (var.service_dimension) = var.service_name }
  alarm_actions      = [aws_sns_topic.this.arn]
  # Built from names so the EventBridge rule and outputs do not depend on the alarms existing.
  alarm_prefix = "arn:${data.aws_partition.current.partition}:cloudwatch:${data.aws_region.current.region}:${data.aws_caller_identity.current.account_id}:alarm"
  # Alarm names are <name>-<suffix> (contract.yaml alarms.suffixes), by purpose.
  alarm_names = { for purpose, suffix in var.alarm_suffixes : purpose => "${var.name}-${suffix}" }
  alarm_arns  = { for purpose, name in local.alarm_names : purpose => "${local.alarm_prefix}:${name}" }
}

# ---- notifications
resource "aws_sns_topic" "this" {
  name              = "${var.name}-notifications"
  kms_master_key_id = var.kms_key_arn
  tags              = var.tags
}

data "aws_iam_policy_document" "topic" {
  statement {
    sid       = "AccountManages"
    actions   = ["sns:Publish", "sns:Subscribe", "sns:GetTopicAttributes", "sns:SetTopicAttributes", "sns:ListSubscriptionsByTopic"]
    resources = [aws_sns_topic.this.arn]
    principals {
      type        = "AWS"
      identifiers = [data.aws_caller_identity.current.account_id]
    }
  }
  statement {
    sid       = "AlarmsAndEventsPublish"
    actions   = ["sns:Publish"]
    resources = [aws_sns_topic.this.arn]
    principals {
      type        = "Service"
      identifiers = ["cloudwatch.amazonaws.com", "events.amazonaws.com"]
    }
    condition {
      test     = "StringEquals"
      variable = "aws:SourceAccount"
      values   = [data.aws_caller_identity.current.account_id]
    }
  }
}

resource "aws_sns_topic_policy" "this" {
  arn    = aws_sns_topic.this.arn
  policy = data.aws_iam_policy_document.topic.json
}

resource "aws_sns_topic_subscription" "email" {
  for_each  = toset(var.alarm_emails)
  topic_arn = aws_sns_topic.this.arn
  protocol  = "email"
  endpoint  = each.value
}

# ---- service-health alarms (notify only)
resource "aws_cloudwatch_metric_alarm" "error_rate" {
  alarm_name          = local.alarm_names.error_rate
  alarm_description   = "Target 5xx responses above ${var.error_rate_threshold_percent}% of requests"
  comparison_operator = "GreaterThanThreshold"
  threshold           = var.error_rate_threshold_percent
  evaluation_periods  = 3
  datapoints_to_alarm = 2
  treat_missing_data  = "notBreaching"
  actions_enabled     = true
  alarm_actions       = local.alarm_actions
  ok_actions          = local.alarm_actions

  metric_query {
    id          = "rate"
    expression  = "IF(requests > 0, 100 * errors / requests, 0)"
    label       = "5xx rate (%)"
    return_data = true
  }
  metric_query {
    id = "errors"
    metric {
      namespace   = "AWS/ApplicationELB"
      metric_name = "HTTPCode_Target_5XX_Count"
      dimensions  = local.alb_dimensions
      period      = 60
      stat        = "Sum"
    }
  }
  metric_query {
    id = "requests"
    metric {
      namespace   = "AWS/ApplicationELB"
      metric_name = "RequestCount"
      dimensions  = local.alb_dimensions
      period      = 60
      stat        = "Sum"
    }
  }
  tags = var.tags
}

resource "aws_cloudwatch_metric_alarm" "p99_latency" {
  alarm_name          = local.alarm_names.p99_latency
  alarm_description   = "ALB p99 target response time above ${var.p99_latency_threshold_seconds} s"
  namespace           = "AWS/ApplicationELB"
  metric_name         = "TargetResponseTime"
  dimensions          = local.alb_dimensions
  extended_statistic  = "p99"
  period              = 60
  evaluation_periods  = 5
  datapoints_to_alarm = 3
  comparison_operator = "GreaterThanThreshold"
  threshold           = var.p99_latency_threshold_seconds
  treat_missing_data  = "notBreaching"
  actions_enabled     = true
  alarm_actions       = local.alarm_actions
  ok_actions          = local.alarm_actions
  tags                = var.tags
}

resource "aws_cloudwatch_metric_alarm" "unhealthy_hosts" {
  alarm_name          = local.alarm_names.unhealthy_hosts
  alarm_description   = "At least one serving task fails the /ready health check"
  namespace           = "AWS/ApplicationELB"
  metric_name         = "UnHealthyHostCount"
  dimensions          = local.alb_dimensions
  statistic           = "Maximum"
  period              = 60
  evaluation_periods  = 3
  comparison_operator = "GreaterThanThreshold"
  threshold           = 0
  treat_missing_data  = "notBreaching"
  actions_enabled     = true
  alarm_actions       = local.alarm_actions
  ok_actions          = local.alarm_actions
  tags                = var.tags
}

resource "aws_cloudwatch_metric_alarm" "failed_executions" {
  alarm_name          = local.alarm_names.failed_executions
  alarm_description   = "A train-evaluate-deploy execution failed, timed out or was aborted"
  comparison_operator = "GreaterThanThreshold"
  threshold           = 0
  evaluation_periods  = 1
  treat_missing_data  = "notBreaching"
  actions_enabled     = true
  alarm_actions       = local.alarm_actions

  metric_query {
    id          = "failed"
    expression  = "failures + timeouts + aborts"
    label       = "Failed executions"
    return_data = true
  }
  dynamic "metric_query" {
    for_each = { failures = "ExecutionsFailed", timeouts = "ExecutionsTimedOut", aborts = "ExecutionsAborted" }
    content {
      id = metric_query.key
      metric {
        namespace   = "AWS/States"
        metric_name = metric_query.value
        dimensions  = { StateMachineArn = var.state_machine_arn }
        period      = 300
        stat        = "Sum"
      }
    }
  }
  tags = var.tags
}

# ---- model-health alarms (notify and retrain). Aggregated on Service, so no SEARCH is needed
# whatever ModelVersion is live; the service also emits the Service+ModelVersion dimension set.
resource "aws_cloudwatch_metric_alarm" "drift" {
  alarm_name          = local.alarm_names.drift
  alarm_description   = "DriftScore >= ${var.drift_threshold} (1.0 = drift-check rejected 'no drift' at its alpha): retraining is triggered"
  namespace           = var.metrics_namespace
  metric_name         = var.drift_metric_name
  dimensions          = local.service_dimensions
  statistic           = "Maximum"
  period              = 3600
  evaluation_periods  = 1
  comparison_operator = "GreaterThanOrEqualToThreshold"
  threshold           = var.drift_threshold
  treat_missing_data  = "notBreaching"
  actions_enabled     = true
  alarm_actions       = local.alarm_actions
  ok_actions          = local.alarm_actions
  tags                = var.tags
}

resource "aws_cloudwatch_metric_alarm" "low_confidence" {
  alarm_name          = local.alarm_names.low_confidence
  alarm_description   = "Share of low-confidence predictions above ${var.low_confidence_threshold}: retraining is triggered"
  namespace           = var.metrics_namespace
  metric_name         = var.low_confidence_metric_name
  dimensions          = local.service_dimensions
  statistic           = "Average"
  period              = 300
  evaluation_periods  = 6
  datapoints_to_alarm = 4
  comparison_operator = "GreaterThanThreshold"
  threshold           = var.low_confidence_threshold
  treat_missing_data  = "notBreaching"
  actions_enabled     = true
  alarm_actions       = local.alarm_actions
  ok_actions          = local.alarm_actions
  tags                = var.tags
}

# ---- alarm -> EventBridge -> retrain_trigger (which enforces a cooldown and starts the workflow)
resource "aws_cloudwatch_event_rule" "retrain" {
  name        = "${var.name}-model-health-alarm"
  description = "A model-health alarm entered ALARM: start retraining"
  event_pattern = jsonencode({
    source        = ["aws.cloudwatch"]
    "detail-type" = ["CloudWatch Alarm State Change"]
    resources     = [local.alarm_arns.drift, local.alarm_arns.low_confidence]
    detail        = { state = { value = ["ALARM"] } }
  })
  tags = var.tags
}

resource "aws_cloudwatch_event_target" "retrain" {
  rule      = aws_cloudwatch_event_rule.retrain.name
  target_id = "retrain-trigger"
  arn       = var.retrain_trigger_function.arn
  retry_policy {
    maximum_event_age_in_seconds = 3600
    maximum_retry_attempts       = 3
  }
}

resource "aws_lambda_permission" "retrain" {
  statement_id  = "AllowModelHealthAlarmRule"
  action        = "lambda:InvokeFunction"
  function_name = var.retrain_trigger_function.name
  principal     = "events.amazonaws.com"
  source_arn    = aws_cloudwatch_event_rule.retrain.arn
}

# ---- scheduled drift check
resource "aws_cloudwatch_event_rule" "drift_check" {
  name                = "${var.name}-drift-check"
  description         = "Compare captured traffic with the reference profile"
  schedule_expression = var.drift_check_schedule
  tags                = var.tags
}

resource "aws_cloudwatch_event_target" "drift_check" {
  rule      = aws_cloudwatch_event_rule.drift_check.name
  target_id = "drift-check"
  arn       = var.drift_check_function.arn
  retry_policy {
    maximum_event_age_in_seconds = 3600
    maximum_retry_attempts       = 2
  }
}

resource "aws_lambda_permission" "drift_check" {
  statement_id  = "AllowDriftSchedule"
  action        = "lambda:InvokeFunction"
  function_name = var.drift_check_function.name
  principal     = "events.amazonaws.com"
  source_arn    = aws_cloudwatch_event_rule.drift_check.arn
}

# ---- dashboard
resource "aws_cloudwatch_dashboard" "this" {
  dashboard_name = var.name
  dashboard_body = jsonencode({
    widgets = [
      {
        type = "metric", x = 0, y = 0, width = 12, height = 6
        properties = {
          title = "Requests and 5xx", region = data.aws_region.current.region, stat = "Sum", period = 60
          metrics = [
            ["AWS/ApplicationELB", "RequestCount", "LoadBalancer", var.alb_arn_suffix, "TargetGroup", var.target_group_arn_suffix],
            [".", "HTTPCode_Target_5XX_Count", ".", ".", ".", "."],
          ]
        }
      },
      {
        type = "metric", x = 12, y = 0, width = 12, height = 6
        properties = {
          title = "Latency (p50 / p99)", region = data.aws_region.current.region, period = 60
          metrics = [
            ["AWS/ApplicationELB", "TargetResponseTime", "LoadBalancer", var.alb_arn_suffix, "TargetGroup", var.target_group_arn_suffix, { stat = "p50" }],
            ["...", { stat = "p99" }],
          ]
        }
      },
      {
        type = "metric", x = 0, y = 6, width = 12, height = 6
        properties = {
          title = "Model health", region = data.aws_region.current.region, period = 300
          metrics = [
            [var.metrics_namespace, var.drift_metric_name, var.service_dimension, var.service_name, { stat = "Maximum" }],
            [var.metrics_namespace, var.low_confidence_metric_name, var.service_dimension, var.service_name, { stat = "Average" }],
          ]
        }
      },
      {
        type = "metric", x = 12, y = 6, width = 12, height = 6
        properties = {
          title = "Tasks and CPU", region = data.aws_region.current.region, period = 60
          metrics = [
            ["AWS/ApplicationELB", "HealthyHostCount", "LoadBalancer", var.alb_arn_suffix, "TargetGroup", var.target_group_arn_suffix, { stat = "Minimum" }],
            ["AWS/ECS", "CPUUtilization", "ClusterName", var.cluster_name, "ServiceName", var.service_name, { stat = "Average", yAxis = "right" }],
          ]
        }
      },
      {
        type = "alarm", x = 0, y = 12, width = 24, height = 4
        properties = {
          title = "Alarms"
          alarms = [
            local.alarm_arns.error_rate, local.alarm_arns.p99_latency,
            local.alarm_arns.unhealthy_hosts, local.alarm_arns.failed_executions,
            local.alarm_arns.drift, local.alarm_arns.low_confidence,
          ]
        }
      },
    ]
  })
}
