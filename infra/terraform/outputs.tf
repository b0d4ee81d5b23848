output "serving_url" {
  description = "Base URL of the inference service (ALB)."
  value       = module.serving.url
}

output "mlflow_tracking_uri" {
  description = "MLflow tracking URI (private: reachable inside the VPC only)."
  value       = module.mlflow.tracking_uri
}

output "mlflow_credential_secret_arns" {
  description = "Secrets Manager secrets {username, password} of MLflow's users: workflow (MLflow's admin, the only one that moves aliases) and reader (read-only). An operator opens the MLflow UI with one of them."
  value = {
    workflow = module.mlflow.workflow_credential_secret_arn
    reader   = module.mlflow.reader_credential_secret_arn
  }
}

output "ecr_repository_urls" {
  description = "ECR repositories to push the serving, training, lambdas and mlflow images to."
  value       = module.registry.repository_urls
}

output "bucket_names" {
  description = "S3 buckets: data (datasets by content hash), artifacts (models), capture (inference capture)."
  value       = module.storage.bucket_names
}

output "ecs_cluster_name" {
  description = "ECS cluster running serving, MLflow and training tasks."
  value       = module.serving.cluster_name
}

output "serving_service_name" {
  description = "ECS service of the inference service."
  value       = module.serving.service_name
}

output "state_machine_arn" {
  description = "Train-evaluate-deploy state machine; start it with aws stepfunctions start-execution."
  value       = module.workflow.state_machine_arn
}

output "release_state_machine_arn" {
  description = "ARN of the release state machine the workflow starts for each release (all-at-once, canary or shadow)."
  value       = module.workflow.release_state_machine_arn
}

output "lambda_function_names" {
  description = "Workflow Lambda names by key."
  value       = module.workflow.function_names
}

output "lambda_environment_names" {
  description = "Environment variable names of each workflow Lambda, by key (the values hold ARNs known only after apply; the names are known at plan, and the CDK parity test compares them)."
  value       = module.workflow.function_environment_names
}

output "workflow_environment" {
  description = "Environment variables the Lambdas and the training task receive."
  value       = module.workflow.environment
}

output "sns_topic_arn" {
  description = "Notification topic; subscribe to it for alarms and workflow results."
  value       = module.monitoring.sns_topic_arn
}

output "dashboard_name" {
  description = "CloudWatch dashboard."
  value       = module.monitoring.dashboard_name
}

output "kms_key_arn" {
  description = "KMS key encrypting data at rest."
  value       = module.storage.kms_key_arn
}

output "github_deploy_role_arn" {
  description = "Role GitHub Actions assumes (environment jobs) to apply; null when enable_ci is false."
  value       = try(module.ci[0].deploy_role_arn, null)
}

output "github_train_role_arn" {
  description = "Role train.yml assumes (AWS_TRAIN_ROLE_ARN): start the state machine and describe its executions; null when enable_ci is false."
  value       = try(module.ci[0].train_role_arn, null)
}

output "github_plan_role_arn" {
  description = "Read-only role GitHub Actions assumes on pull requests to plan; null when enable_ci is false."
  value       = try(module.ci[0].plan_role_arn, null)
}

output "delivery_pipeline_name" {
  description = "The CodePipeline that applies releases (delivery = codepipeline); null with delivery = github."
  value       = try(module.delivery[0].pipeline_name, null)
}

output "release_object" {
  description = "Where Jenkins puts the release zip (make publish-release RELEASE_BUCKET=<bucket> RELEASE_KEY=<key>): {bucket, key, uri}; null with delivery = github."
  value       = try(module.delivery[0].release_object, null)
}
