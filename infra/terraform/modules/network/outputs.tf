output "vpc_id" {
  description = "ID of the VPC."
  value       = aws_vpc.this.id
}

output "vpc_cidr_block" {
  description = "IPv4 CIDR of the VPC."
  value       = aws_vpc.this.cidr_block
}

output "public_subnet_ids" {
  description = "Public subnets (ALB only; nothing else gets a public address)."
  value       = aws_subnet.public[*].id
}

output "private_subnet_ids" {
  description = "Private subnets for ECS tasks, Lambdas and RDS."
  value       = aws_subnet.private[*].id
}

output "private_route_table_ids" {
  description = "Route tables of the private subnets."
  value       = aws_route_table.private[*].id
}

output "nat_gateway_ids" {
  description = "NAT gateways (empty unless enable_nat_gateway)."
  value       = aws_nat_gateway.this[*].id
}

output "interface_endpoint_ids" {
  description = "Interface VPC endpoint IDs by service short name."
  value       = { for k, v in aws_vpc_endpoint.interface : k => v.id }
}
