data "aws_region" "current" {}
data "aws_partition" "current" {}

locals {
  region = data.aws_region.current.region
  https  = var.certificate_arn != null
  # The contract's names (var.environment_names) with their values; extra_environment only adds names.
  contract_environment = {
    ESTEIRA_MODEL_URI      = var.model_uri
    MLFLOW_TRACKING_URI    = var.mlflow_tracking_uri
    ESTEIRA_CAPTURE_S3_URI = var.capture_s3_uri
    METRICS_NAMESPACE      = var.metrics_namespace
    ESTEIRA_SERVICE_NAME   = var.service_name
    ESTEIRA_SERVING_PORT   = tostring(var.container_port)
    # Shadow releases: every task copies its traffic here while a candidate with ESTEIRA_SERVING_ROLE=shadow
    # answers.
    ESTEIRA_SHADOW_URL = "http://${local.canary_host}:${var.container_port}"
  }
  # Plus the image the container runs, as contract.yaml image_variable: every container of the stack
  # gets it with its own image, so it is not in serving_environment (a precondition keeps it out).
  environment = merge(var.extra_environment, local.contract_environment, { (var.image_variable) = var.image_uri })
  # Names set here but not in the contract, or in the contract but not set (a precondition checks it is empty).
  environment_mismatch = setunion(
    setsubtract(keys(local.contract_environment), var.environment_names),
    setsubtract(var.environment_names, keys(local.contract_environment)),
  )
  canary_host = "canary.${var.discovery_namespace}"
}

# ---- cluster (also hosts MLflow and the training task)
resource "aws_cloudwatch_log_group" "exec" {
  name              = "/esteira/${var.name}/ecs-exec"
  retention_in_days = var.log_retention_days
  kms_key_id        = var.kms_key_arn
  tags              = var.tags
}

resource "aws_ecs_cluster" "this" {
  name = var.name

  setting {
    name  = "containerInsights"
    value = "enabled"
  }

  configuration {
    execute_command_configuration {
      kms_key_id = var.kms_key_arn
      logging    = "OVERRIDE"
      log_configuration {
        cloud_watch_encryption_enabled = true
        cloud_watch_log_group_name     = aws_cloudwatch_log_group.exec.name
      }
    }
  }

  tags = var.tags
}

resource "aws_ecs_cluster_capacity_providers" "this" {
  cluster_name       = aws_ecs_cluster.this.name
  capacity_providers = concat(["FARGATE", "FARGATE_SPOT"], var.extra_capacity_providers)
  default_capacity_provider_strategy {
    capacity_provider = var.use_fargate_spot ? "FARGATE_SPOT" : "FARGATE"
    weight            = 1
  }
}

# ---- IAM: the execution role pulls images and writes logs; the task role is what the code may do
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
  name                 = "${var.name}-serving-exec"
  assume_role_policy   = data.aws_iam_policy_document.ecs_tasks_assume.json
  permissions_boundary = var.permissions_boundary_arn
  tags                 = var.tags
}

resource "aws_iam_role_policy_attachment" "execution" {
  role       = aws_iam_role.execution.name
  policy_arn = "arn:${data.aws_partition.current.partition}:iam::aws:policy/service-role/AmazonECSTaskExecutionRolePolicy"
}

# ECS reads MLflow's read-only credential for the container (its `secrets`) with the execution role;
# the secret is under the stack's key. The service may read the registry, never move an alias.
data "aws_iam_policy_document" "execution" {
  statement {
    sid       = "ReadMlflowReaderCredential"
    actions   = ["secretsmanager:GetSecretValue"]
    resources = [var.mlflow_credential_secret_arn]
  }
  statement {
    sid       = "DecryptMlflowReaderCredential"
    actions   = ["kms:Decrypt"]
    resources = [var.kms_key_arn]
  }
}

resource "aws_iam_role_policy" "execution" {
  name   = "serving-secrets"
  role   = aws_iam_role.execution.id
  policy = data.aws_iam_policy_document.execution.json
}

resource "aws_iam_role" "task" {
  name                 = "${var.name}-serving-task"
  assume_role_policy   = data.aws_iam_policy_document.ecs_tasks_assume.json
  permissions_boundary = var.permissions_boundary_arn
  tags                 = var.tags
}

data "aws_iam_policy_document" "task" {
  statement {
    sid       = "CaptureInference"
    actions   = ["s3:PutObject"]
    resources = ["${var.capture_bucket_arn}/*"]
  }
  # The model comes from MLflow over HTTP (the server proxies its artifact store): no S3 read here.
  statement {
    sid       = "UseDataKey"
    actions   = ["kms:GenerateDataKey"]
    resources = [var.kms_key_arn]
  }
}

resource "aws_iam_role_policy" "task" {
  name   = "serving"
  role   = aws_iam_role.task.id
  policy = data.aws_iam_policy_document.task.json
}

# ---- task definition and service
resource "aws_cloudwatch_log_group" "serving" {
  name              = "/esteira/${var.name}/serving"
  retention_in_days = var.log_retention_days
  kms_key_id        = var.kms_key_arn
  tags              = var.tags
}

resource "aws_ecs_task_definition" "serving" {
  family                   = "${var.name}-serving"
  requires_compatibilities = ["FARGATE"]
  network_mode             = "awsvpc"
  cpu                      = var.cpu
  memory                   = var.memory
  execution_role_arn       = aws_iam_role.execution.arn
  task_role_arn            = aws_iam_role.task.arn

  runtime_platform {
    operating_system_family = "LINUX"
    cpu_architecture        = "X86_64"
  }

  # The root filesystem is read-only; the service may write scratch files to /tmp only.
  volume {
    name = "tmp"
  }

  container_definitions = jsonencode([
    {
      name                   = "serving"
      image                  = var.image_uri
      essential              = true
      readonlyRootFilesystem = true
      portMappings           = [{ containerPort = var.container_port, protocol = "tcp" }]
      environment            = [for k in sort(keys(local.environment)) : { name = k, value = local.environment[k] }]
      mountPoints            = [{ sourceVolume = "tmp", containerPath = "/tmp", readOnly = false }]
      # MLflow's clients read these natively: the read-only user (modules/mlflow, docs/deploy.md).
      secrets = [
        { name = "MLFLOW_TRACKING_USERNAME", valueFrom = "${var.mlflow_credential_secret_arn}:username::" },
        { name = "MLFLOW_TRACKING_PASSWORD", valueFrom = "${var.mlflow_credential_secret_arn}:password::" },
      ]
      logConfiguration = {
        logDriver = "awslogs"
        options = {
          awslogs-group         = aws_cloudwatch_log_group.serving.name
          awslogs-region        = local.region
          awslogs-stream-prefix = "serving"
        }
      }
    }
  ])

  lifecycle {
    precondition {
      condition     = length(local.environment_mismatch) == 0
      error_message = "The serving environment differs from contract.yaml serving_environment in: ${join(", ", sort(local.environment_mismatch))}."
    }
    precondition {
      condition     = !contains(var.environment_names, var.image_variable)
      error_message = "contract.yaml serving_environment names ${var.image_variable}, the image_variable: the module sets it to image_uri, outside that list."
    }
  }

  tags = var.tags
}

resource "aws_security_group" "alb" {
  name        = "${var.name}-alb"
  description = "Public entry to the inference service"
  vpc_id      = var.vpc_id
  tags        = merge(var.tags, { Name = "${var.name}-alb" })
}

resource "aws_vpc_security_group_ingress_rule" "alb" {
  #checkov:skip=CKV_AWS_260:The ALB is the public entry point; narrow allowed_ingress_cidrs to restrict it.
  for_each          = toset(flatten([for c in var.allowed_ingress_cidrs : [for p in(local.https ? [80, 443] : [80]) : "${c}|${p}"]]))
  security_group_id = aws_security_group.alb.id
  description       = "HTTP(S) from allowed clients"
  cidr_ipv4         = split("|", each.key)[0]
  ip_protocol       = "tcp"
  from_port         = tonumber(split("|", each.key)[1])
  to_port           = tonumber(split("|", each.key)[1])
}

resource "aws_vpc_security_group_egress_rule" "alb_to_tasks" {
  security_group_id            = aws_security_group.alb.id
  description                  = "To serving tasks"
  referenced_security_group_id = aws_security_group.tasks.id
  ip_protocol                  = "tcp"
  from_port                    = var.container_port
  to_port                      = var.container_port
}

resource "aws_security_group" "tasks" {
  name        = "${var.name}-serving-tasks"
  description = "Serving tasks: from the ALB only"
  vpc_id      = var.vpc_id
  tags        = merge(var.tags, { Name = "${var.name}-serving-tasks" })
}

resource "aws_vpc_security_group_ingress_rule" "tasks_from_alb" {
  security_group_id            = aws_security_group.tasks.id
  description                  = "From the ALB"
  referenced_security_group_id = aws_security_group.alb.id
  ip_protocol                  = "tcp"
  from_port                    = var.container_port
  to_port                      = var.container_port
}

# Shadow copies: serving tasks post to the canary service's tasks directly (Cloud Map, not the ALB).
resource "aws_vpc_security_group_ingress_rule" "tasks_from_tasks" {
  security_group_id            = aws_security_group.tasks.id
  description                  = "Shadow copies from the stable serving tasks"
  referenced_security_group_id = aws_security_group.tasks.id
  ip_protocol                  = "tcp"
  from_port                    = var.container_port
  to_port                      = var.container_port
}

resource "aws_vpc_security_group_egress_rule" "tasks_to_tasks" {
  security_group_id            = aws_security_group.tasks.id
  description                  = "Shadow copies to the canary serving tasks"
  referenced_security_group_id = aws_security_group.tasks.id
  ip_protocol                  = "tcp"
  from_port                    = var.container_port
  to_port                      = var.container_port
}

resource "aws_vpc_security_group_egress_rule" "tasks_https" {
  security_group_id = aws_security_group.tasks.id
  description       = "HTTPS to AWS APIs (VPC endpoints, S3 gateway)"
  cidr_ipv4         = "0.0.0.0/0"
  ip_protocol       = "tcp"
  from_port         = 443
  to_port           = 443
}

resource "aws_vpc_security_group_egress_rule" "tasks_mlflow" {
  security_group_id = aws_security_group.tasks.id
  description       = "MLflow tracking server inside the VPC"
  cidr_ipv4         = var.vpc_cidr_block
  ip_protocol       = "tcp"
  from_port         = 5000
  to_port           = 5000
}

resource "aws_lb" "this" {
  #checkov:skip=CKV2_AWS_20:HTTP redirects to HTTPS (listener http_redirect) whenever certificate_arn is set; without a certificate (no domain in the reference) HTTP is all there is.
  #checkov:skip=CKV2_AWS_28:WAF is optional (cost); attach a web ACL with aws_wafv2_web_acl_association for public production traffic.
  name                       = "${var.name}-serving"
  load_balancer_type         = "application"
  internal                   = false
  subnets                    = var.public_subnet_ids
  security_groups            = [aws_security_group.alb.id]
  drop_invalid_header_fields = true
  enable_deletion_protection = var.deletion_protection

  access_logs {
    bucket  = var.alb_logs_bucket
    prefix  = "alb"
    enabled = true
  }

  tags = var.tags
}

resource "aws_lb_target_group" "serving" {
  #checkov:skip=CKV_AWS_378:TLS terminates at the ALB; tasks are reachable only from the ALB security group inside the VPC.
  name                 = "${var.name}-serving"
  port                 = var.container_port
  protocol             = "HTTP"
  target_type          = "ip"
  vpc_id               = var.vpc_id
  deregistration_delay = 30

  health_check {
    path                = var.health_check_path
    matcher             = "200"
    interval            = 15
    timeout             = 5
    healthy_threshold   = 2
    unhealthy_threshold = 3
  }

  tags = var.tags
}

# The candidate's target group (canary and shadow releases). The listener forwards to both groups
# with weights; the release workflow moves them (elasticloadbalancing:ModifyListener), see docs/canary.md.
resource "aws_lb_target_group" "canary" {
  #checkov:skip=CKV_AWS_378:TLS terminates at the ALB; tasks are reachable only from the ALB security group inside the VPC.
  name                 = "${var.name}-canary"
  port                 = var.container_port
  protocol             = "HTTP"
  target_type          = "ip"
  vpc_id               = var.vpc_id
  deregistration_delay = 30

  health_check {
    path                = var.health_check_path
    matcher             = "200"
    interval            = 15
    timeout             = 5
    healthy_threshold   = 2
    unhealthy_threshold = 3
  }

  tags = var.tags
}

resource "aws_lb_listener" "http_forward" {
  #checkov:skip=CKV_AWS_2:Plain HTTP only when no certificate_arn is given (the reference has no domain); with one, HTTP redirects to HTTPS.
  #checkov:skip=CKV_AWS_103:No TLS on this listener (see CKV_AWS_2); the HTTPS listener enforces TLS 1.2+.
  #checkov:skip=CKV2_AWS_20:Redirect to HTTPS exists (http_redirect) whenever certificate_arn is set.
  count             = local.https ? 0 : 1
  load_balancer_arn = aws_lb.this.arn
  port              = 80
  protocol          = "HTTP"
  # All traffic to the stable group until a release shifts it; the workflow owns the weights afterwards.
  default_action {
    type = "forward"
    forward {
      target_group {
        arn    = aws_lb_target_group.serving.arn
        weight = 100
      }
      target_group {
        arn    = aws_lb_target_group.canary.arn
        weight = 0
      }
      stickiness {
        enabled  = false
        duration = 1
      }
    }
  }

  lifecycle {
    ignore_changes = [default_action]
  }
}

resource "aws_lb_listener" "http_redirect" {
  count             = local.https ? 1 : 0
  load_balancer_arn = aws_lb.this.arn
  port              = 80
  protocol          = "HTTP"
  default_action {
    type = "redirect"
    redirect {
      port        = "443"
      protocol    = "HTTPS"
      status_code = "HTTP_301"
    }
  }
}

resource "aws_lb_listener" "https" {
  count             = local.https ? 1 : 0
  load_balancer_arn = aws_lb.this.arn
  port              = 443
  protocol          = "HTTPS"
  ssl_policy        = "ELBSecurityPolicy-TLS13-1-2-2021-06"
  certificate_arn   = var.certificate_arn
  # All traffic to the stable group until a release shifts it; the workflow owns the weights afterwards.
  default_action {
    type = "forward"
    forward {
      target_group {
        arn    = aws_lb_target_group.serving.arn
        weight = 100
      }
      target_group {
        arn    = aws_lb_target_group.canary.arn
        weight = 0
      }
      stickiness {
        enabled  = false
        duration = 1
      }
    }
  }

  lifecycle {
    ignore_changes = [default_action]
  }
}

resource "aws_ecs_service" "serving" {
  name                               = var.service_name
  cluster                            = aws_ecs_cluster.this.id
  task_definition                    = aws_ecs_task_definition.serving.arn
  desired_count                      = var.desired_count
  launch_type                        = var.use_fargate_spot ? null : "FARGATE"
  platform_version                   = "LATEST"
  health_check_grace_period_seconds  = 60
  deployment_minimum_healthy_percent = 100
  deployment_maximum_percent         = 200
  propagate_tags                     = "SERVICE"
  enable_ecs_managed_tags            = true

  dynamic "capacity_provider_strategy" {
    for_each = var.use_fargate_spot ? [1] : []
    content {
      capacity_provider = "FARGATE_SPOT"
      weight            = 1
    }
  }

  deployment_circuit_breaker {
    enable   = true
    rollback = true
  }

  network_configuration {
    subnets          = var.private_subnet_ids
    security_groups  = [aws_security_group.tasks.id]
    assign_public_ip = false
  }

  load_balancer {
    target_group_arn = aws_lb_target_group.serving.arn
    container_name   = "serving"
    container_port   = var.container_port
  }

  # The workflow's deploy step owns the running revision (a model version maps to a task-definition
  # revision) and autoscaling owns the count: Terraform must not roll either back.
  lifecycle {
    ignore_changes = [task_definition, desired_count]
  }

  depends_on = [aws_lb_listener.http_forward, aws_lb_listener.https, aws_iam_role_policy.task]
  tags       = var.tags
}

# canary.<namespace>: A records of the canary service's tasks (none while it has no tasks).
resource "aws_service_discovery_service" "canary" {
  name = "canary"
  dns_config {
    namespace_id   = var.discovery_namespace_id
    routing_policy = "MULTIVALUE"
    dns_records {
      type = "A"
      ttl  = 10
    }
  }
  tags = var.tags
}

# The candidate's service: empty (desired 0) except while a canary or shadow release runs. Same task
# family, network and roles as the stable service; the release workflow sets its revision and count.
resource "aws_ecs_service" "canary" {
  name                               = "${var.service_name}-canary"
  cluster                            = aws_ecs_cluster.this.id
  task_definition                    = aws_ecs_task_definition.serving.arn
  desired_count                      = 0
  launch_type                        = var.use_fargate_spot ? null : "FARGATE"
  platform_version                   = "LATEST"
  health_check_grace_period_seconds  = 60
  deployment_minimum_healthy_percent = 100
  deployment_maximum_percent         = 200
  propagate_tags                     = "SERVICE"
  enable_ecs_managed_tags            = true

  dynamic "capacity_provider_strategy" {
    for_each = var.use_fargate_spot ? [1] : []
    content {
      capacity_provider = "FARGATE_SPOT"
      weight            = 1
    }
  }

  deployment_circuit_breaker {
    enable   = true
    rollback = true
  }

  network_configuration {
    subnets          = var.private_subnet_ids
    security_groups  = [aws_security_group.tasks.id]
    assign_public_ip = false
  }

  load_balancer {
    target_group_arn = aws_lb_target_group.canary.arn
    container_name   = "serving"
    container_port   = var.container_port
  }

  service_registries {
    registry_arn = aws_service_discovery_service.canary.arn
  }

  lifecycle {
    ignore_changes = [task_definition, desired_count]
  }

  depends_on = [aws_lb_listener.http_forward, aws_lb_listener.https, aws_iam_role_policy.task]
  tags       = var.tags
}

# ---- autoscaling on CPU and on ALB requests per task
resource "aws_appautoscaling_target" "serving" {
  service_namespace  = "ecs"
  resource_id        = "service/${aws_ecs_cluster.this.name}/${aws_ecs_service.serving.name}"
  scalable_dimension = "ecs:service:DesiredCount"
  min_capacity       = var.min_capacity
  max_capacity       = max(var.max_capacity, var.min_capacity)
}

resource "aws_appautoscaling_policy" "cpu" {
  name               = "${var.name}-serving-cpu"
  policy_type        = "TargetTrackingScaling"
  service_namespace  = aws_appautoscaling_target.serving.service_namespace
  resource_id        = aws_appautoscaling_target.serving.resource_id
  scalable_dimension = aws_appautoscaling_target.serving.scalable_dimension
  target_tracking_scaling_policy_configuration {
    target_value       = var.cpu_target_percent
    scale_in_cooldown  = 300
    scale_out_cooldown = 60
    predefined_metric_specification {
      predefined_metric_type = "ECSServiceAverageCPUUtilization"
    }
  }
}

resource "aws_appautoscaling_policy" "requests" {
  name               = "${var.name}-serving-requests"
  policy_type        = "TargetTrackingScaling"
  service_namespace  = aws_appautoscaling_target.serving.service_namespace
  resource_id        = aws_appautoscaling_target.serving.resource_id
  scalable_dimension = aws_appautoscaling_target.serving.scalable_dimension
  target_tracking_scaling_policy_configuration {
    target_value       = var.requests_per_target
    scale_in_cooldown  = 300
    scale_out_cooldown = 60
    predefined_metric_specification {
      predefined_metric_type = "ALBRequestCountPerTarget"
      resource_label         = "${aws_lb.this.arn_suffix}/${aws_lb_target_group.serving.arn_suffix}"
    }
  }
}
