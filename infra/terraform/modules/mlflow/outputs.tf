output "tracking_uri" {
  description = "MLFLOW_TRACKING_URI for everything inside the VPC."
  value       = local.tracking_uri
}

output "security_group_id" {
  description = "Security group of the MLflow tasks."
  value       = aws_security_group.mlflow.id
}

output "db_endpoint" {
  description = "PostgreSQL endpoint (host:port)."
  value       = aws_db_instance.this.endpoint
}

output "db_secret_arn" {
  description = "Secrets Manager secret holding the database master credentials (managed and rotated by RDS)."
  value       = aws_db_instance.this.master_user_secret[0].secret_arn
}

output "service_name" {
  description = "ECS service name of the MLflow server."
  value       = aws_ecs_service.mlflow.name
}

output "discovery_namespace_id" {
  description = "Cloud Map namespace ID."
  value       = aws_service_discovery_private_dns_namespace.this.id
}

output "workflow_credential_secret_arn" {
  description = "Secrets Manager secret {username, password} of MLflow's admin user: the workflow's Lambdas and training roles only."
  value       = aws_secretsmanager_secret.credential["workflow"].arn
  depends_on  = [aws_secretsmanager_secret_version.credential] # its readers start once it has a value
}

output "reader_credential_secret_arn" {
  description = "Secrets Manager secret {username, password} of MLflow's read-only user: the serving tasks."
  value       = aws_secretsmanager_secret.credential["reader"].arn
  depends_on  = [aws_secretsmanager_secret_version.credential]
}
