# EC2 capacity for heavy training (docs/training-capacity.md): an ECS capacity provider over an Auto
# Scaling group of ECS-optimised instances. Managed scaling keeps the group at 0 instances until a
# training task is placed on it, and managed termination protection keeps ECS from scaling in an
# instance that is still running one. The training task itself is the workflow module's EC2 task
# definition; what runs here is only the host and its ECS agent.
data "aws_partition" "current" {}

locals {
  ami_parameter = coalesce(
    var.ami_parameter,
    var.gpus > 0 ? "/aws/service/ecs/optimized-ami/amazon-linux-2023/gpu/recommended/image_id" : "/aws/service/ecs/optimized-ami/amazon-linux-2023/recommended/image_id",
  )
  # The agent's configuration: the cluster to join, no instance metadata for awsvpc tasks (they use
  # their task role, never the host's), GPU support on GPU hosts.
  ecs_config = compact([
    "ECS_CLUSTER=${var.cluster_name}",
    "ECS_AWSVPC_BLOCK_IMDS=true",
    "ECS_ENABLE_TASK_IAM_ROLE=true",
    var.gpus > 0 ? "ECS_ENABLE_GPU_SUPPORT=true" : "",
  ])
}

data "aws_ssm_parameter" "ami" {
  name = local.ami_parameter
}

# The instance type's size, read from EC2: a task that cannot fit on one host is never placed (it
# waits in PROVISIONING while managed scaling adds hosts it cannot use), so the plan stops here.
data "aws_ec2_instance_type" "host" {
  instance_type = var.instance_type

  lifecycle {
    postcondition {
      condition     = var.task_cpu <= self.default_vcpus * 1024
      error_message = "ec2_training.task_cpu = ${var.task_cpu} does not fit ${var.instance_type} (${self.default_vcpus} vCPU = ${self.default_vcpus * 1024} CPU units)."
    }
    postcondition {
      condition     = var.task_memory <= floor(self.memory_size * 0.9)
      error_message = "ec2_training.task_memory = ${var.task_memory} MiB does not fit ${var.instance_type}: at most ${floor(self.memory_size * 0.9)} MiB (90 % of ${self.memory_size} MiB) is left to tasks."
    }
    postcondition {
      condition     = var.gpus <= sum(concat([0], [for g in self.gpus : g.count]))
      error_message = "ec2_training.gpus = ${var.gpus}, but ${var.instance_type} has ${sum(concat([0], [for g in self.gpus : g.count]))} GPU(s)."
    }
  }
}

# ---- the host's role: what the ECS agent needs (AWS's managed policy for container instances)
data "aws_iam_policy_document" "ec2_assume" {
  statement {
    actions = ["sts:AssumeRole"]
    principals {
      type        = "Service"
      identifiers = ["ec2.amazonaws.com"]
    }
  }
}

resource "aws_iam_role" "instance" {
  name                 = "${var.name}-ec2-training"
  description          = "ECS agent on the EC2 training hosts"
  assume_role_policy   = data.aws_iam_policy_document.ec2_assume.json
  permissions_boundary = var.permissions_boundary_arn
  tags                 = var.tags
}

resource "aws_iam_role_policy_attachment" "instance" {
  role       = aws_iam_role.instance.name
  policy_arn = "arn:${data.aws_partition.current.partition}:iam::aws:policy/service-role/AmazonEC2ContainerServiceforEC2Role"
}

resource "aws_iam_instance_profile" "instance" {
  name = "${var.name}-ec2-training"
  role = aws_iam_role.instance.name
  tags = var.tags
}

# ---- network: the host only calls out (the ECS agent, image pulls); tasks have their own ENIs
resource "aws_security_group" "instance" {
  name        = "${var.name}-ec2-training"
  description = "EC2 training hosts: outbound HTTPS only (ECS agent, ECR, logs)"
  vpc_id      = var.vpc_id
  tags        = merge(var.tags, { Name = "${var.name}-ec2-training" })
}

resource "aws_vpc_security_group_egress_rule" "instance_https" {
  security_group_id = aws_security_group.instance.id
  description       = "HTTPS to AWS APIs (VPC endpoints, the S3 gateway)"
  cidr_ipv4         = "0.0.0.0/0"
  ip_protocol       = "tcp"
  from_port         = 443
  to_port           = 443
}

resource "aws_launch_template" "this" {
  name                   = "${var.name}-ec2-training"
  description            = "ECS-optimised host for training tasks (${local.ami_parameter})"
  image_id               = nonsensitive(data.aws_ssm_parameter.ami.value)
  instance_type          = data.aws_ec2_instance_type.host.instance_type # checked to fit the task above
  update_default_version = true
  vpc_security_group_ids = [aws_security_group.instance.id]
  user_data              = base64encode("#!/bin/bash\ncat >> /etc/ecs/ecs.config <<'CONFIG'\n${join("\n", local.ecs_config)}\nCONFIG\n")

  iam_instance_profile {
    arn = aws_iam_instance_profile.instance.arn
  }

  # IMDSv2 only, and one hop: a container cannot reach the host's credentials through the metadata service.
  metadata_options {
    http_endpoint               = "enabled"
    http_tokens                 = "required"
    http_put_response_hop_limit = 1
    instance_metadata_tags      = "disabled"
  }

  block_device_mappings {
    device_name = "/dev/xvda"
    ebs {
      volume_type           = "gp3"
      volume_size           = var.volume_size_gb
      encrypted             = true
      kms_key_id            = var.kms_key_arn
      delete_on_termination = true
    }
  }

  monitoring {
    enabled = true
  }

  tag_specifications {
    resource_type = "instance"
    tags          = merge(var.tags, { Name = "${var.name}-ec2-training" })
  }

  tag_specifications {
    resource_type = "volume"
    tags          = merge(var.tags, { Name = "${var.name}-ec2-training" })
  }

  tags = var.tags
}

resource "aws_autoscaling_group" "this" {
  name                = "${var.name}-ec2-training"
  vpc_zone_identifier = var.private_subnet_ids
  min_size            = 0
  max_size            = var.max_instances
  # Managed termination protection needs every instance protected; ECS lifts it when a host is idle.
  protect_from_scale_in = true
  health_check_type     = "EC2"

  launch_template {
    id      = aws_launch_template.this.id
    version = aws_launch_template.this.latest_version
  }

  # ECS sets the desired capacity (managed scaling); Terraform must not reset it on the next apply.
  lifecycle {
    ignore_changes = [desired_capacity]
  }

  tag {
    key                 = "AmazonECSManaged"
    value               = "true"
    propagate_at_launch = true
  }

  dynamic "tag" {
    for_each = var.tags
    content {
      key                 = tag.key
      value               = tag.value
      propagate_at_launch = true
    }
  }
}

resource "aws_ecs_capacity_provider" "this" {
  name = "${var.name}-ec2-training"

  auto_scaling_group_provider {
    auto_scaling_group_arn         = aws_autoscaling_group.this.arn
    managed_termination_protection = "ENABLED"
    managed_draining               = "ENABLED"

    managed_scaling {
      status                    = "ENABLED"
      target_capacity           = 100
      minimum_scaling_step_size = 1
      maximum_scaling_step_size = var.max_instances
      instance_warmup_period    = 300
    }
  }

  tags = var.tags
}
