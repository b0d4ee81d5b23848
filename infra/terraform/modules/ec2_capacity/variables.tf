variable "name" {
  description = "Name prefix for every resource (e.g. esteira-dev); the capacity provider is <name>-ec2-training."
  type        = string
  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{2,30}$", var.name))
    error_message = "name must be 3-31 lowercase letters, digits or dashes, starting with a letter."
  }
}

variable "cluster_name" {
  description = "ECS cluster the instances join (written to /etc/ecs/ecs.config by the user data)."
  type        = string
}

variable "vpc_id" {
  description = "VPC of the instances."
  type        = string
}

variable "private_subnet_ids" {
  description = "Private subnets the Auto Scaling group launches into (no public IP)."
  type        = list(string)
  validation {
    condition     = length(var.private_subnet_ids) > 0
    error_message = "private_subnet_ids must name at least one subnet."
  }
}

variable "instance_type" {
  description = "EC2 instance type of the training hosts, GPU types included (g5.xlarge, p4d.24xlarge...). With gpus > 0 the GPU variant of the ECS-optimised AMI is used."
  type        = string
  validation {
    condition     = can(regex("^[a-z][a-z0-9-]*\\.[a-z0-9]+$", var.instance_type))
    error_message = "instance_type must look like an EC2 instance type, e.g. m6i.4xlarge or g5.2xlarge."
  }
}

variable "gpus" {
  description = "GPUs the training task reserves (0 for CPU-only). More than 0 selects the ECS GPU AMI and enables the agent's GPU support."
  type        = number
  validation {
    condition     = var.gpus >= 0 && var.gpus <= 16 && floor(var.gpus) == var.gpus
    error_message = "gpus must be a whole number from 0 to 16."
  }
}

variable "task_cpu" {
  description = "CPU units of the training task (1024 per vCPU); the plan fails unless the instance type has them."
  type        = number
}

variable "task_memory" {
  description = "Memory (MiB) of the training task; the plan fails unless it fits in 90 % of the instance type's memory (ECS registers less than the nominal size: the OS and the agent keep some)."
  type        = number
}

variable "max_instances" {
  description = "Upper bound of the Auto Scaling group; managed scaling keeps it at 0 while no training runs."
  type        = number
  validation {
    condition     = var.max_instances >= 1 && var.max_instances <= 100
    error_message = "max_instances must be between 1 and 100."
  }
}

variable "volume_size_gb" {
  description = "Size of the encrypted gp3 root volume (image layers and the container's scratch space)."
  type        = number
  validation {
    condition     = var.volume_size_gb >= 30 && var.volume_size_gb <= 16384
    error_message = "volume_size_gb must be between 30 (the ECS-optimised AMI's minimum) and 16384."
  }
}

variable "ami_parameter" {
  description = "Public SSM parameter holding the ECS-optimised AMI ID; null picks Amazon Linux 2023 (its GPU variant when gpus > 0)."
  type        = string
  default     = null
  validation {
    condition     = var.ami_parameter == null || can(regex("^/aws/service/ecs/optimized-ami/", coalesce(var.ami_parameter, "-")))
    error_message = "ami_parameter must be one of the public /aws/service/ecs/optimized-ami/... parameters."
  }
}

variable "kms_key_arn" {
  description = "KMS key encrypting the root volumes."
  type        = string
}

variable "permissions_boundary_arn" {
  description = "Permissions boundary of the instance role (the stack's boundary)."
  type        = string
}

variable "tags" {
  description = "Tags added to every resource, propagated to the instances and their volumes."
  type        = map(string)
  default     = {}
}
