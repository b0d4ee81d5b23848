output "cluster_name" {
  description = "ECS cluster name (serving, MLflow and training tasks)."
  value       = aws_ecs_cluster.this.name
}

output "cluster_arn" {
  description = "ECS cluster ARN."
  value       = aws_ecs_cluster.this.arn
}

output "service_name" {
  description = "ECS service name of the inference service."
  value       = aws_ecs_service.serving.name
}

output "service_arn" {
  description = "ECS service ARN (id) of the inference service."
  value       = aws_ecs_service.serving.id
}

output "task_definition_family" {
  description = "Task-definition family; the deploy step registers one revision per model version in it."
  value       = aws_ecs_task_definition.serving.family
}

output "task_definition_arn" {
  description = "Task-definition revision created by Terraform (the first deploy)."
  value       = aws_ecs_task_definition.serving.arn
}

output "task_role_arn" {
  description = "Role the serving container runs as."
  value       = aws_iam_role.task.arn
}

output "execution_role_arn" {
  description = "Role ECS uses to pull the image and write logs."
  value       = aws_iam_role.execution.arn
}

output "tasks_security_group_id" {
  description = "Security group of the serving tasks."
  value       = aws_security_group.tasks.id
}

output "alb_dns_name" {
  description = "DNS name of the ALB."
  value       = aws_lb.this.dns_name
}

output "url" {
  description = "Base URL of the inference service."
  value       = "${local.https ? "https" : "http"}://${aws_lb.this.dns_name}"
}

output "alb_arn_suffix" {
  description = "ALB ARN suffix (CloudWatch LoadBalancer dimension)."
  value       = aws_lb.this.arn_suffix
}

output "target_group_arn_suffix" {
  description = "Target group ARN suffix (CloudWatch TargetGroup dimension)."
  value       = aws_lb_target_group.serving.arn_suffix
}

output "log_group_name" {
  description = "Log group of the inference service."
  value       = aws_cloudwatch_log_group.serving.name
}

output "canary_service_name" {
  description = "ECS service that runs the candidate during canary and shadow releases."
  value       = aws_ecs_service.canary.name
}

output "stable_target_group_arn" {
  description = "Target group of the stable service (weight 100 outside releases)."
  value       = aws_lb_target_group.serving.arn
}

output "canary_target_group_arn" {
  description = "Target group of the canary service (weight 0 outside releases)."
  value       = aws_lb_target_group.canary.arn
}

output "canary_target_group_arn_suffix" {
  description = "Canary target group ARN suffix (CloudWatch TargetGroup dimension)."
  value       = aws_lb_target_group.canary.arn_suffix
}

output "listener_arn" {
  description = "The listener whose weighted forward action the release workflow moves (HTTPS when a certificate is set)."
  value       = local.https ? aws_lb_listener.https[0].arn : aws_lb_listener.http_forward[0].arn
}

output "shadow_url" {
  description = "Where serving tasks copy traffic during a shadow release: the canary service's Cloud Map name."
  value       = "http://${local.canary_host}:${var.container_port}"
}
