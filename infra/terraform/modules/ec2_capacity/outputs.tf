output "capacity_provider_name" {
  description = "ECS capacity provider the EC2 training backend's RunTask names in its strategy."
  value       = aws_ecs_capacity_provider.this.name
}

output "autoscaling_group_name" {
  description = "Auto Scaling group of the training hosts (0 instances while idle)."
  value       = aws_autoscaling_group.this.name
}

output "instance_role_arn" {
  description = "Role of the training hosts (the ECS agent's, never the training code's: that is the task role)."
  value       = aws_iam_role.instance.arn
}

output "ami_id" {
  description = "ECS-optimised AMI the launch template uses, read from the public SSM parameter at plan time."
  value       = nonsensitive(data.aws_ssm_parameter.ami.value)
}
