terraform {
  # OpenTofu >= 1.8 or Terraform >= 1.10 (S3 backend with use_lockfile).
  required_version = ">= 1.8.0"

  required_providers {
    aws = {
      # Resolves to registry.opentofu.org/hashicorp/aws under OpenTofu and
      # registry.terraform.io/hashicorp/aws under Terraform.
      source  = "hashicorp/aws"
      version = ">= 6.0, < 7.0"
    }
  }
}
