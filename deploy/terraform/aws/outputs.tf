output "endpoint_dns_name" {
  description = "DNS name of the NLB: point public_dns_name at it (CNAME or alias) unless route53_zone_id did."
  value       = aws_lb.this.dns_name
}

output "public_url" {
  description = "The URL clients use: ferry login PUBLIC_URL. Register PUBLIC_URL/callback at the identity provider."
  value       = "https://${var.public_dns_name}"
}

output "nlb_arn" {
  description = "ARN of the network load balancer."
  value       = aws_lb.this.arn
}

output "asg_name" {
  description = "Name of the nodes' Auto Scaling group (aws autoscaling start-instance-refresh --auto-scaling-group-name ...)."
  value       = aws_autoscaling_group.nodes.name
}

output "node_security_group_id" {
  description = "Security group of the nodes, e.g. to allow them into the services clients reach."
  value       = aws_security_group.node.id
}

output "node_role_arn" {
  description = "IAM role of the nodes."
  value       = aws_iam_role.node.arn
}

output "join_token_secret_arn" {
  description = "Secrets Manager secret holding the current join token."
  value       = aws_secretsmanager_secret.join_token.arn
}

output "bootstrap_parameter" {
  description = "SSM parameter the first node creates as its bootstrap lock (not managed by Terraform)."
  value       = local.bootstrap_parameter
}
