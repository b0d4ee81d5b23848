output "repository_urls" {
  description = "Repository URLs by short name (serving, training, lambdas, mlflow); push images as <url>:<tag>."
  value       = { for k, r in aws_ecr_repository.this : k => r.repository_url }
}

output "repository_arns" {
  description = "Repository ARNs by short name."
  value       = { for k, r in aws_ecr_repository.this : k => r.arn }
}
