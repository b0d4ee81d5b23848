locals {
  emulated = var.aws_endpoint_url != null
}

provider "aws" {
  region = var.aws_region

  # Only for an emulator (moto/LocalStack): it has no real credentials, account or metadata API.
  skip_credentials_validation = local.emulated
  skip_requesting_account_id  = local.emulated
  skip_metadata_api_check     = local.emulated
  s3_use_path_style           = local.emulated
  max_retries                 = local.emulated ? 2 : null

  # Every service this configuration calls goes to the emulator when aws_endpoint_url is set.
  dynamic "endpoints" {
    for_each = local.emulated ? [var.aws_endpoint_url] : []
    content {
      appautoscaling   = endpoints.value
      autoscaling      = endpoints.value
      cloudwatch       = endpoints.value
      codebuild        = endpoints.value
      codepipeline     = endpoints.value
      dynamodb         = endpoints.value
      ec2              = endpoints.value
      ecr              = endpoints.value
      ecs              = endpoints.value
      elbv2            = endpoints.value
      events           = endpoints.value
      iam              = endpoints.value
      kms              = endpoints.value
      lambda           = endpoints.value
      logs             = endpoints.value
      rds              = endpoints.value
      route53          = endpoints.value
      s3               = endpoints.value
      sagemaker        = endpoints.value
      secretsmanager   = endpoints.value
      servicediscovery = endpoints.value
      sfn              = endpoints.value
      sns              = endpoints.value
      ssm              = endpoints.value
      sts              = endpoints.value
    }
  }

  default_tags {
    tags = local.tags
  }
}
