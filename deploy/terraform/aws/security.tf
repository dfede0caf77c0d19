# The nodes' security group. The NLB preserves client addresses, so client
# rules are here; NLB health checks come from its private addresses in the
# VPC.

resource "aws_security_group" "node" {
  name        = "${var.name}-node"
  description = "ferry ${var.name} nodes"
  vpc_id      = var.vpc_id
  tags        = merge(local.tags, { Name = "${var.name}-node" })
}

# API (HTTPS, sign-in pages) from the allowed client networks.
resource "aws_vpc_security_group_ingress_rule" "api_clients" {
  for_each = toset(var.allowed_api_cidrs)

  security_group_id = aws_security_group.node.id
  description       = "ferry API from clients (NLB TCP 443)"
  ip_protocol       = "tcp"
  from_port         = local.api_port
  to_port           = local.api_port
  cidr_ipv4         = each.value
}

# API from the VPC: NLB health checks (/readyz).
resource "aws_vpc_security_group_ingress_rule" "api_health" {
  security_group_id = aws_security_group.node.id
  description       = "NLB health checks (HTTPS /readyz)"
  ip_protocol       = "tcp"
  from_port         = local.api_port
  to_port           = local.api_port
  cidr_ipv4         = data.aws_vpc.this.cidr_block
}

# API between nodes: joining nodes ask a peer for certificates.
resource "aws_vpc_security_group_ingress_rule" "api_nodes" {
  security_group_id            = aws_security_group.node.id
  description                  = "ferry API between nodes (join)"
  ip_protocol                  = "tcp"
  from_port                    = local.api_port
  to_port                      = local.api_port
  referenced_security_group_id = aws_security_group.node.id
}

# WireGuard from the allowed client networks.
resource "aws_vpc_security_group_ingress_rule" "wireguard" {
  for_each = toset(var.allowed_wireguard_cidrs)

  security_group_id = aws_security_group.node.id
  description       = "WireGuard from clients (NLB UDP 51820)"
  ip_protocol       = "udp"
  from_port         = local.wireguard_port
  to_port           = local.wireguard_port
  cidr_ipv4         = each.value
}

# Raft and forwarded writes: between nodes only (mutual TLS on top).
resource "aws_vpc_security_group_ingress_rule" "cluster" {
  security_group_id            = aws_security_group.node.id
  description                  = "ferry cluster (Raft, mutual TLS) between nodes only"
  ip_protocol                  = "tcp"
  from_port                    = local.cluster_port
  to_port                      = local.cluster_port
  referenced_security_group_id = aws_security_group.node.id
}

# Prometheus metrics: only from the monitoring networks.
resource "aws_vpc_security_group_ingress_rule" "metrics" {
  for_each = toset(var.monitoring_cidrs)

  security_group_id = aws_security_group.node.id
  description       = "Prometheus scrapes of /metrics"
  ip_protocol       = "tcp"
  from_port         = local.metrics_port
  to_port           = local.metrics_port
  cidr_ipv4         = each.value
}

# Egress: clients' traffic to the VPC (masqueraded to the node's address),
# the identity provider, the SIEM, and the AWS APIs.
resource "aws_vpc_security_group_egress_rule" "all" {
  security_group_id = aws_security_group.node.id
  description       = "client traffic, IdP, SIEM, AWS APIs"
  ip_protocol       = "-1"
  cidr_ipv4         = "0.0.0.0/0"
}

# Dual stack: IPv6 clients arrive from the NLB's own IPv4 addresses in the
# VPC (an IPv4 target group cannot keep an IPv6 client's address).
resource "aws_vpc_security_group_ingress_rule" "api_via_nlb6" {
  count = var.dual_stack ? 1 : 0

  security_group_id = aws_security_group.node.id
  description       = "ferry API from IPv6 clients through the dual-stack NLB"
  ip_protocol       = "tcp"
  from_port         = local.api_port
  to_port           = local.api_port
  cidr_ipv4         = data.aws_vpc.this.cidr_block
}

resource "aws_vpc_security_group_ingress_rule" "wireguard_via_nlb6" {
  count = var.dual_stack ? 1 : 0

  security_group_id = aws_security_group.node.id
  description       = "WireGuard from IPv6 clients through the dual-stack NLB"
  ip_protocol       = "udp"
  from_port         = local.wireguard_port
  to_port           = local.wireguard_port
  cidr_ipv4         = data.aws_vpc.this.cidr_block
}
