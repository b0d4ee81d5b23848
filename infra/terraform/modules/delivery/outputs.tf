output "pipeline_name" {
  description = "The delivery pipeline (aws codepipeline get-pipeline-state --name <this>)."
  value       = aws_codepipeline.this.name
}

output "pipeline_arn" {
  description = "ARN of the delivery pipeline."
  value       = aws_codepipeline.this.arn
}

output "artifact_bucket" {
  description = "Artifact bucket: the release zip Jenkins publishes and the pipeline's artifacts."
  value       = aws_s3_bucket.artifacts.bucket
}

output "release_object" {
  description = "Where make publish-release puts the release zip (a new version starts the pipeline)."
  value = {
    bucket = aws_s3_bucket.artifacts.bucket
    key    = var.release_object_key
    uri    = "s3://${aws_s3_bucket.artifacts.bucket}/${var.release_object_key}"
  }
}

output "codebuild_project_name" {
  description = "CodeBuild project of the deploy stage."
  value       = aws_codebuild_project.deploy.name
}

output "codebuild_role_arn" {
  description = "Role the deploy build runs with (the CI deploy policy plus its logs and artifacts)."
  value       = aws_iam_role.codebuild.arn
}

output "pipeline_role_arn" {
  description = "Role CodePipeline runs the actions with."
  value       = aws_iam_role.pipeline.arn
}

output "approval_required" {
  description = "Whether the pipeline has a manual approval stage (prod only)."
  value       = local.approval
}
