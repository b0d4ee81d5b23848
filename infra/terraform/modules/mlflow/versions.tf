terraform {
  required_version = ">= 1.11.0" # ephemeral resources, write-only attributes
  required_providers {
    aws = {
      source  = "hashicorp/aws"
      version = ">= 6.0, < 7.0"
    }
  }
}
