output "state_machine_arn" {
  description = "ARN of the train-evaluate-deploy state machine."
  value       = local.state_machine_arn
}

output "state_machine_name" {
  description = "Name of the state machine."
  value       = local.state_machine_name
}

output "function_arns" {
  description = "Lambda ARNs by function key."
  value       = { for k, f in aws_lambda_function.this : k => f.arn }
}

output "function_names" {
  description = "Lambda names by function key."
  value       = { for k, f in aws_lambda_function.this : k => f.function_name }
}

output "train_task_definition_arn" {
  description = "Training task-definition revision."
  value       = aws_ecs_task_definition.train.arn
}

output "lock_table_name" {
  description = "DynamoDB table holding the workflow lock and the retrain cooldown."
  value       = aws_dynamodb_table.lock.name
}

output "environment" {
  description = "Environment every Lambda and the training task receive (the configuration contract with model/config.py); each also gets image_variable set to the image it runs."
  value       = local.environment
}

output "security_group_id" {
  description = "Security group of the Lambdas and training tasks."
  value       = aws_security_group.workflow.id
}

output "function_environment_names" {
  description = "Names of the environment variables each Lambda gets, by function key (contract.yaml workflow_environment, extra_environment, the function's own and image_variable); known at plan time, unlike the values."
  value       = { for k, e in local.function_environments : k => sort(keys(e)) }
}

output "release_state_machine_arn" {
  description = "ARN of the release state machine (stepfunctions/release.asl.json), which the workflow starts for each release."
  value       = aws_sfn_state_machine.release.arn
}
