data "aws_region" "current" {}
data "aws_partition" "current" {}

locals {
  host         = "mlflow.${var.discovery_namespace}"
  tracking_uri = "http://${local.host}:5000"
  db_name      = "mlflow"
  db_user      = "mlflow"
  # The RDS-managed password may contain URL-reserved characters: quote it before building the URI.
  server_command = join(" ", [
    # Two workers: four (the default) nearly fill the task's memory at idle (tests/images/test_mlflow_image.py).
    "exec mlflow server --host 0.0.0.0 --port 5000 --workers 2",
    "--backend-store-uri \"postgresql://$${DB_USER}:$(python -c 'import os,urllib.parse;print(urllib.parse.quote(os.environ[\"DB_PASSWORD\"],safe=\"\"))')@$${DB_HOST}:$${DB_PORT}/$${DB_NAME}?sslmode=require\"",
    "--artifacts-destination s3://${var.artifacts_bucket_name}/mlflow --serve-artifacts",
  ])
}

# ---- PostgreSQL backend store; the master password lives in Secrets Manager (managed by RDS)
resource "aws_db_subnet_group" "this" {
  name       = "${var.name}-mlflow"
  subnet_ids = var.private_subnet_ids
  tags       = var.tags
}

resource "aws_db_parameter_group" "this" {
  name   = "${var.name}-mlflow-pg${split(".", var.db_engine_version)[0]}"
  family = "postgres${split(".", var.db_engine_version)[0]}"

  parameter {
    name  = "rds.force_ssl"
    value = "1"
  }
  parameter {
    name  = "log_statement"
    value = "ddl"
  }
  parameter {
    name  = "log_min_duration_statement"
    value = "1000"
  }

  tags = var.tags
}

resource "aws_security_group" "db" {
  name        = "${var.name}-mlflow-db"
  description = "PostgreSQL for MLflow: from the MLflow tasks only"
  vpc_id      = var.vpc_id
  tags        = merge(var.tags, { Name = "${var.name}-mlflow-db" })
}

resource "aws_vpc_security_group_ingress_rule" "db_from_mlflow" {
  security_group_id            = aws_security_group.db.id
  description                  = "PostgreSQL from MLflow tasks"
  referenced_security_group_id = aws_security_group.mlflow.id
  ip_protocol                  = "tcp"
  from_port                    = 5432
  to_port                      = 5432
}

resource "aws_db_instance" "this" {
  #checkov:skip=CKV_AWS_118:Enhanced monitoring adds an IAM role and cost; Performance Insights and CloudWatch logs cover this small backend store.
  identifier                          = "${var.name}-mlflow"
  engine                              = "postgres"
  engine_version                      = var.db_engine_version
  instance_class                      = var.db_instance_class
  allocated_storage                   = var.db_allocated_storage
  storage_type                        = "gp3"
  storage_encrypted                   = true
  kms_key_id                          = var.kms_key_arn
  db_name                             = local.db_name
  username                            = local.db_user
  manage_master_user_password         = true
  master_user_secret_kms_key_id       = var.kms_key_arn
  iam_database_authentication_enabled = true
  db_subnet_group_name                = aws_db_subnet_group.this.name
  parameter_group_name                = aws_db_parameter_group.this.name
  vpc_security_group_ids              = [aws_security_group.db.id]
  publicly_accessible                 = false
  multi_az                            = var.db_multi_az
  backup_retention_period             = var.db_backup_retention_days
  copy_tags_to_snapshot               = true
  auto_minor_version_upgrade          = true
  deletion_protection                 = var.deletion_protection
  skip_final_snapshot                 = !var.deletion_protection
  final_snapshot_identifier           = var.deletion_protection ? "${var.name}-mlflow-final" : null
  enabled_cloudwatch_logs_exports     = ["postgresql", "upgrade"]
  performance_insights_enabled        = var.db_performance_insights
  performance_insights_kms_key_id     = var.db_performance_insights ? var.kms_key_arn : null
  tags                                = var.tags
}

# ---- MLflow server on ECS Fargate, private, discoverable as mlflow.<namespace>
resource "aws_service_discovery_private_dns_namespace" "this" {
  name        = var.discovery_namespace
  description = "Private service names for ${var.name}"
  vpc         = var.vpc_id
  tags        = var.tags
}

resource "aws_service_discovery_service" "mlflow" {
  name = "mlflow"
  dns_config {
    namespace_id   = aws_service_discovery_private_dns_namespace.this.id
    routing_policy = "MULTIVALUE"
    dns_records {
      type = "A"
      ttl  = 10
    }
  }
  tags = var.tags
}

resource "aws_security_group" "mlflow" {
  name        = "${var.name}-mlflow"
  description = "MLflow tracking server: port 5000 from inside the VPC"
  vpc_id      = var.vpc_id
  tags        = merge(var.tags, { Name = "${var.name}-mlflow" })
}

resource "aws_vpc_security_group_ingress_rule" "mlflow" {
  security_group_id = aws_security_group.mlflow.id
  description       = "MLflow API from the VPC (serving, training, Lambdas)"
  cidr_ipv4         = var.vpc_cidr_block
  ip_protocol       = "tcp"
  from_port         = 5000
  to_port           = 5000
}

resource "aws_vpc_security_group_egress_rule" "mlflow_https" {
  security_group_id = aws_security_group.mlflow.id
  description       = "HTTPS to AWS APIs (S3 artifacts, Secrets Manager, ECR, Logs)"
  cidr_ipv4         = "0.0.0.0/0"
  ip_protocol       = "tcp"
  from_port         = 443
  to_port           = 443
}

resource "aws_vpc_security_group_egress_rule" "mlflow_db" {
  security_group_id            = aws_security_group.mlflow.id
  description                  = "PostgreSQL backend store"
  referenced_security_group_id = aws_security_group.db.id
  ip_protocol                  = "tcp"
  from_port                    = 5432
  to_port                      = 5432
}

data "aws_iam_policy_document" "ecs_tasks_assume" {
  statement {
    actions = ["sts:AssumeRole"]
    principals {
      type        = "Service"
      identifiers = ["ecs-tasks.amazonaws.com"]
    }
  }
}

resource "aws_iam_role" "execution" {
  name                 = "${var.name}-mlflow-exec"
  assume_role_policy   = data.aws_iam_policy_document.ecs_tasks_assume.json
  permissions_boundary = var.permissions_boundary_arn
  tags                 = var.tags
}

resource "aws_iam_role_policy_attachment" "execution" {
  role       = aws_iam_role.execution.name
  policy_arn = "arn:${data.aws_partition.current.partition}:iam::aws:policy/service-role/AmazonECSTaskExecutionRolePolicy"
}

data "aws_iam_policy_document" "execution_secret" {
  statement {
    sid       = "ReadDatabaseSecret"
    actions   = ["secretsmanager:GetSecretValue"]
    resources = [aws_db_instance.this.master_user_secret[0].secret_arn]
  }
  statement {
    sid       = "DecryptDatabaseSecret"
    actions   = ["kms:Decrypt"]
    resources = [var.kms_key_arn]
  }
}

resource "aws_iam_role_policy" "execution_secret" {
  name   = "read-db-secret"
  role   = aws_iam_role.execution.id
  policy = data.aws_iam_policy_document.execution_secret.json
}

resource "aws_iam_role" "task" {
  name                 = "${var.name}-mlflow-task"
  assume_role_policy   = data.aws_iam_policy_document.ecs_tasks_assume.json
  permissions_boundary = var.permissions_boundary_arn
  tags                 = var.tags
}

data "aws_iam_policy_document" "task" {
  statement {
    sid       = "ListArtifacts"
    actions   = ["s3:ListBucket"]
    resources = [var.artifacts_bucket_arn]
  }
  statement {
    sid       = "ReadWriteArtifacts"
    actions   = ["s3:GetObject", "s3:PutObject", "s3:DeleteObject"]
    resources = ["${var.artifacts_bucket_arn}/mlflow/*"]
  }
  statement {
    sid       = "UseDataKey"
    actions   = ["kms:Decrypt", "kms:GenerateDataKey"]
    resources = [var.kms_key_arn]
  }
}

resource "aws_iam_role_policy" "task" {
  name   = "mlflow-artifacts"
  role   = aws_iam_role.task.id
  policy = data.aws_iam_policy_document.task.json
}

resource "aws_cloudwatch_log_group" "mlflow" {
  name              = "/esteira/${var.name}/mlflow"
  retention_in_days = var.log_retention_days
  kms_key_id        = var.kms_key_arn
  tags              = var.tags
}

resource "aws_ecs_task_definition" "mlflow" {
  family                   = "${var.name}-mlflow"
  requires_compatibilities = ["FARGATE"]
  network_mode             = "awsvpc"
  cpu                      = var.cpu
  memory                   = var.memory
  execution_role_arn       = aws_iam_role.execution.arn
  task_role_arn            = aws_iam_role.task.arn

  volume {
    name = "tmp"
  }

  container_definitions = jsonencode([
    {
      name                   = "mlflow"
      image                  = var.image_uri
      essential              = true
      readonlyRootFilesystem = true
      entryPoint             = ["sh", "-c"]
      command                = [local.server_command]
      portMappings           = [{ containerPort = 5000, protocol = "tcp" }]
      mountPoints            = [{ sourceVolume = "tmp", containerPath = "/tmp", readOnly = false }]
      environment = [
        { name = "DB_HOST", value = aws_db_instance.this.address },
        { name = "DB_PORT", value = tostring(aws_db_instance.this.port) },
        { name = "DB_NAME", value = local.db_name },
        { name = "DB_USER", value = local.db_user },
        { name = "MLFLOW_SERVER_ALLOWED_HOSTS", value = "${local.host},${local.host}:5000,localhost,localhost:5000" },
        { name = "MLFLOW_SERVER_ENABLE_JOB_EXECUTION", value = "false" },
        { name = "TMPDIR", value = "/tmp" },
        # The image this container runs (contract.yaml image_variable), as every container of the stack.
        { name = var.image_variable, value = var.image_uri },
      ]
      secrets = [
        { name = "DB_PASSWORD", valueFrom = "${aws_db_instance.this.master_user_secret[0].secret_arn}:password::" },
      ]
      logConfiguration = {
        logDriver = "awslogs"
        options = {
          awslogs-group         = aws_cloudwatch_log_group.mlflow.name
          awslogs-region        = data.aws_region.current.region
          awslogs-stream-prefix = "mlflow"
        }
      }
    }
  ])

  tags = var.tags
}

resource "aws_ecs_service" "mlflow" {
  name                              = "esteira-mlflow"
  cluster                           = var.cluster_arn
  task_definition                   = aws_ecs_task_definition.mlflow.arn
  desired_count                     = var.desired_count
  launch_type                       = "FARGATE"
  platform_version                  = "LATEST"
  propagate_tags                    = "SERVICE"
  health_check_grace_period_seconds = null

  deployment_circuit_breaker {
    enable   = true
    rollback = true
  }

  network_configuration {
    subnets          = var.private_subnet_ids
    security_groups  = [aws_security_group.mlflow.id]
    assign_public_ip = false
  }

  service_registries {
    registry_arn = aws_service_discovery_service.mlflow.arn
  }

  tags = var.tags
}
