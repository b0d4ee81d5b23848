terraform {
  # OpenTofu or Terraform >= 1.11: ephemeral resources and write-only attributes (the MLflow
  # credentials never enter the plan or the state, modules/mlflow) and the S3 backend's use_lockfile.
  required_version = ">= 1.11.0"

  required_providers {
    aws = {
      # Resolves to registry.opentofu.org/hashicorp/aws under OpenTofu and
      # registry.terraform.io/hashicorp/aws under Terraform.
      source  = "hashicorp/aws"
      version = ">= 6.0, < 7.0"
    }
  }
}
