output "deploy_role_arn" {
  description = "Role for `terraform apply` from the GitHub environment (aws-actions/configure-aws-credentials role-to-assume)."
  value       = aws_iam_role.deploy.arn
}

output "plan_role_arn" {
  description = "Read-only role for `terraform plan` on pull requests."
  value       = aws_iam_role.plan.arn
}

output "train_role_arn" {
  description = "Role for train.yml: may start the state machine and describe its executions, nothing else."
  value       = aws_iam_role.train.arn
}

output "oidc_provider_arn" {
  description = "GitHub OIDC provider ARN."
  value       = local.provider_arn
}

output "deploy_policy_json" {
  description = "The deploy role's policy document; modules/delivery gives the CodeBuild deploy build the same permissions."
  value       = data.aws_iam_policy_document.deploy.json
}
