"""Notifications, alarms, the retraining and drift-check rules, and the dashboard (modules/monitoring).

Alarm names, metric names and dimensions come from contract.yaml, as Terraform's do: alarms are
<name>-<suffix> (esteira-dev-model-drift, esteira-dev-service-5xx-rate), and the model-health ones,
<name>-model-*, are the only alarms that start retraining (retrain_trigger also checks the prefix).
A model-health alarm entering ALARM reaches retrain_trigger through an EventBridge rule that matches
those two alarms' ARNs; retrain_trigger enforces the cooldown and starts the state machine.
"""

from __future__ import annotations

from aws_cdk import Aws, Duration, Stack
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_cloudwatch_actions as cw_actions
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sns_subscriptions as subscriptions
from constructs import Construct

from .contract import contract


class Notifications(Construct):
    """The KMS-encrypted topic for alarms and workflow results (created first: the workflow publishes)."""

    def __init__(
        self, scope: Construct, construct_id: str, *, name: str, key: kms.IKey, alarm_emails: list[str]
    ) -> None:
        super().__init__(scope, construct_id)
        self.topic = sns.Topic(self, "Topic", topic_name=f"{name}-notifications", master_key=key)
        self.topic.add_to_resource_policy(
            iam.PolicyStatement(
                sid="AccountManages",
                actions=[
                    "sns:Publish",
                    "sns:Subscribe",
                    "sns:GetTopicAttributes",
                    "sns:SetTopicAttributes",
                    "sns:ListSubscriptionsByTopic",
                ],
                resources=[self.topic.topic_arn],
                principals=[iam.AccountPrincipal(Aws.ACCOUNT_ID)],
            )
        )
        self.topic.add_to_resource_policy(
            iam.PolicyStatement(
                sid="AlarmsAndEventsPublish",
                actions=["sns:Publish"],
                resources=[self.topic.topic_arn],
                principals=[
                    iam.ServicePrincipal("cloudwatch.amazonaws.com"),
                    iam.ServicePrincipal("events.amazonaws.com"),
                ],
                conditions={"StringEquals": {"aws:SourceAccount": Aws.ACCOUNT_ID}},
            )
        )
        for email in alarm_emails:
            self.topic.add_subscription(subscriptions.EmailSubscription(email))


class Monitoring(Construct):
    """Service, pipeline and model-health alarms; retraining and drift-check rules; the dashboard."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        name: str,
        topic: sns.ITopic,
        cluster_name: str,
        service_name: str,
        alb_full_name: str,
        target_group_full_name: str,
        state_machine_arn: str,
        retrain_trigger: lambda_.IFunction,
        drift_check: lambda_.IFunction,
        drift_check_schedule: str,
        drift_threshold: float = 1.0,
        low_confidence_threshold: float = 0.3,
        error_rate_threshold_percent: float = 5,
        p99_latency_threshold_seconds: float = 0.5,
    ) -> None:
        super().__init__(scope, construct_id)
        names = contract()
        namespace, service_dimension = names.metrics_namespace, names.dimension("service")
        drift_metric_name, low_confidence_metric_name = names.metric("drift_score"), names.metric("low_confidence_rate")
        region = Stack.of(self).region
        notify = cw_actions.SnsAction(topic)
        alb_dims = {"LoadBalancer": alb_full_name, "TargetGroup": target_group_full_name}

        def alb_metric(metric: str, statistic: str) -> cloudwatch.Metric:
            return cloudwatch.Metric(
                namespace="AWS/ApplicationELB",
                metric_name=metric,
                dimensions_map=alb_dims,
                statistic=statistic,
                period=Duration.minutes(1),
            )

        def wire(alarm: cloudwatch.Alarm, ok: bool = True) -> cloudwatch.Alarm:
            alarm.add_alarm_action(notify)
            if ok:
                alarm.add_ok_action(notify)
            return alarm

        # ---- service-health alarms (notify only)
        self.error_rate = wire(
            cloudwatch.Alarm(
                self,
                "ErrorRate",
                alarm_name=names.alarm_name(name, "error_rate"),
                alarm_description=f"Target 5xx responses above {error_rate_threshold_percent}% of requests",
                metric=cloudwatch.MathExpression(
                    expression="IF(requests > 0, 100 * errors / requests, 0)",
                    using_metrics={
                        "errors": alb_metric("HTTPCode_Target_5XX_Count", "Sum"),
                        "requests": alb_metric("RequestCount", "Sum"),
                    },
                    label="5xx rate (%)",
                    period=Duration.minutes(1),
                ),
                threshold=error_rate_threshold_percent,
                evaluation_periods=3,
                datapoints_to_alarm=2,
                comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
                treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
            )
        )
        self.p99_latency = wire(
            cloudwatch.Alarm(
                self,
                "P99Latency",
                alarm_name=names.alarm_name(name, "p99_latency"),
                alarm_description=f"ALB p99 target response time above {p99_latency_threshold_seconds} s",
                metric=alb_metric("TargetResponseTime", "p99"),
                threshold=p99_latency_threshold_seconds,
                evaluation_periods=5,
                datapoints_to_alarm=3,
                comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
                treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
            )
        )
        self.unhealthy_hosts = wire(
            cloudwatch.Alarm(
                self,
                "UnhealthyHosts",
                alarm_name=names.alarm_name(name, "unhealthy_hosts"),
                alarm_description="At least one serving task fails the /ready health check",
                metric=alb_metric("UnHealthyHostCount", "Maximum"),
                threshold=0,
                evaluation_periods=3,
                comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
                treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
            )
        )

        # ---- pipeline alarm
        def states_metric(metric: str) -> cloudwatch.Metric:
            return cloudwatch.Metric(
                namespace="AWS/States",
                metric_name=metric,
                dimensions_map={"StateMachineArn": state_machine_arn},
                statistic="Sum",
                period=Duration.minutes(5),
            )

        self.failed_executions = wire(
            cloudwatch.Alarm(
                self,
                "WorkflowFailed",
                alarm_name=names.alarm_name(name, "failed_executions"),
                alarm_description="A train-evaluate-deploy execution failed, timed out or was aborted",
                metric=cloudwatch.MathExpression(
                    expression="failures + timeouts + aborts",
                    using_metrics={
                        "failures": states_metric("ExecutionsFailed"),
                        "timeouts": states_metric("ExecutionsTimedOut"),
                        "aborts": states_metric("ExecutionsAborted"),
                    },
                    label="Failed executions",
                    period=Duration.minutes(5),
                ),
                threshold=0,
                evaluation_periods=1,
                comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
                treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
            ),
            ok=False,
        )

        # ---- model-health alarms (notify and retrain). Aggregated on [Service], which the service and
        # the drift check publish next to [Service, ModelVersion]: whichever version is live, no alarm
        # changes (Terraform's alarms read the same metrics).
        def model_metric(metric: str, statistic: str, period: Duration) -> cloudwatch.Metric:
            return cloudwatch.Metric(
                namespace=namespace,
                metric_name=metric,
                dimensions_map={service_dimension: service_name},
                statistic=statistic,
                period=period,
            )

        self.drift = wire(
            cloudwatch.Alarm(
                self,
                "Drift",
                alarm_name=names.alarm_name(name, "drift"),
                alarm_description=(
                    f"{drift_metric_name} >= {_number(drift_threshold)} (1.0 = drift-check rejected 'no drift' at its"
                    " alpha): retraining is triggered"
                ),
                metric=model_metric(drift_metric_name, "Maximum", Duration.hours(1)),
                threshold=drift_threshold,
                evaluation_periods=1,
                comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
                treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
            )
        )
        self.low_confidence = wire(
            cloudwatch.Alarm(
                self,
                "LowConfidence",
                alarm_name=names.alarm_name(name, "low_confidence"),
                alarm_description=(
                    f"Share of low-confidence predictions above {_number(low_confidence_threshold)}: "
                    "retraining is triggered"
                ),
                metric=model_metric(low_confidence_metric_name, "Average", Duration.minutes(5)),
                threshold=low_confidence_threshold,
                evaluation_periods=6,
                datapoints_to_alarm=4,
                comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
                treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
            )
        )

        # ---- alarm -> EventBridge -> retrain_trigger (cooldown, then states:StartExecution): the two
        # model-health alarms by ARN, as Terraform's rule matches them.
        self.retrain_rule = events.Rule(
            self,
            "RetrainRule",
            rule_name=f"{name}-model-health-alarm",
            description="A model-health alarm entered ALARM: start retraining",
            event_pattern=events.EventPattern(
                source=["aws.cloudwatch"],
                detail_type=["CloudWatch Alarm State Change"],
                resources=[self.drift.alarm_arn, self.low_confidence.alarm_arn],
                detail={"state": {"value": ["ALARM"]}},
            ),
        )
        self.retrain_rule.add_target(
            targets.LambdaFunction(retrain_trigger, retry_attempts=3, max_event_age=Duration.hours(1))
        )

        # ---- scheduled drift check
        self.drift_rule = events.Rule(
            self,
            "DriftCheckRule",
            rule_name=f"{name}-drift-check",
            description="Compare captured traffic with the reference profile",
            schedule=events.Schedule.expression(drift_check_schedule),
        )
        self.drift_rule.add_target(
            targets.LambdaFunction(drift_check, retry_attempts=2, max_event_age=Duration.hours(1))
        )

        # ---- dashboard (same widgets as Terraform's)
        alarms = [
            self.error_rate,
            self.p99_latency,
            self.unhealthy_hosts,
            self.failed_executions,
            self.drift,
            self.low_confidence,
        ]
        alb = ["LoadBalancer", alb_full_name, "TargetGroup", target_group_full_name]
        ecs_dims = ["ClusterName", cluster_name, "ServiceName", service_name]
        service_dims = [service_dimension, service_name]
        body = {
            "widgets": [
                {
                    "type": "metric", "x": 0, "y": 0, "width": 12, "height": 6,
                    "properties": {
                        "title": "Requests and 5xx", "region": region, "stat": "Sum", "period": 60,
                        "metrics": [
                            ["AWS/ApplicationELB", "RequestCount", *alb],
                            [".", "HTTPCode_Target_5XX_Count", ".", ".", ".", "."],
                        ],
                    },
                },
                {
                    "type": "metric", "x": 12, "y": 0, "width": 12, "height": 6,
                    "properties": {
                        "title": "Latency (p50 / p99)", "region": region, "period": 60,
                        "metrics": [
                            ["AWS/ApplicationELB", "TargetResponseTime", *alb, {"stat": "p50"}],
                            ["...", {"stat": "p99"}],
                        ],
                    },
                },
                {
                    "type": "metric", "x": 0, "y": 6, "width": 12, "height": 6,
                    "properties": {
                        "title": "Model health", "region": region, "period": 300,
                        "metrics": [
                            [namespace, drift_metric_name, *service_dims, {"stat": "Maximum"}],
                            [namespace, low_confidence_metric_name, *service_dims, {"stat": "Average"}],
                        ],
                    },
                },
                {
                    "type": "metric", "x": 12, "y": 6, "width": 12, "height": 6,
                    "properties": {
                        "title": "Tasks and CPU", "region": region, "period": 60,
                        "metrics": [
                            ["AWS/ApplicationELB", "HealthyHostCount", *alb, {"stat": "Minimum"}],
                            ["AWS/ECS", "CPUUtilization", *ecs_dims, {"stat": "Average", "yAxis": "right"}],
                        ],
                    },
                },
                {
                    "type": "alarm", "x": 0, "y": 12, "width": 24, "height": 4,
                    "properties": {"title": "Alarms", "alarms": [a.alarm_arn for a in alarms]},
                },
            ]
        }  # fmt: skip
        self.dashboard = cloudwatch.CfnDashboard(
            self, "Dashboard", dashboard_name=name, dashboard_body=Stack.of(self).to_json_string(body)
        )


def _number(value: float) -> str:
    """A number as Terraform interpolates it into a string (1.0 -> "1", 0.3 -> "0.3")."""
    return str(int(value)) if float(value).is_integer() else repr(float(value))
