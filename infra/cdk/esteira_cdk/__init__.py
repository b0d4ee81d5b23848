"""esteira's AWS CDK v2 app: the same deployment as infra/terraform, one construct per Terraform module."""
