output "kms_key_arn" {
  description = "ARN of the customer-managed KMS key encrypting data at rest."
  value       = aws_kms_key.this.arn
}

output "kms_key_id" {
  description = "ID of the KMS key."
  value       = aws_kms_key.this.key_id
}

output "bucket_names" {
  description = "Bucket names by purpose: data, artifacts, capture."
  value       = { for k, b in aws_s3_bucket.this : k => b.bucket }
}

output "bucket_arns" {
  description = "Bucket ARNs by purpose: data, artifacts, capture."
  value       = { for k, b in aws_s3_bucket.this : k => b.arn }
}

output "logs_bucket_name" {
  description = "Bucket receiving S3 server access logs (prefix s3/) and ALB access logs (prefix alb/)."
  value       = aws_s3_bucket.logs.bucket
}
