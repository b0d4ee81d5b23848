# Development: smallest footprint, easy to destroy. Usage:
#   tofu apply -var-file=envs/dev.tfvars     (or terraform apply -var-file=envs/dev.tfvars)
environment              = "dev"
aws_region               = "us-east-1"
az_count                 = 2
endpoint_subnet_count    = 1
serving_cpu              = 512
serving_memory           = 1024
serving_min_capacity     = 1
serving_max_capacity     = 2
use_fargate_spot         = true
mlflow_db_instance_class = "db.t4g.micro"
mlflow_db_multi_az       = false
deletion_protection      = false
force_destroy            = true
log_retention_days       = 30
retrain_cooldown_seconds = 3600
drift_check_schedule     = "rate(6 hours)"
github_repository        = "esteira-mlops/esteira"
state_bucket             = "esteira-tfstate-123456789012"
