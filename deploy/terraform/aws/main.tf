# ferry on AWS: an internet-facing NLB (TCP 443 -> the API, UDP 51820 ->
# WireGuard, both health-checked with HTTPS GET /readyz) in front of an Auto
# Scaling group of ferryd nodes across availability zones. See README.md.

data "aws_partition" "current" {}
data "aws_region" "current" {}
data "aws_caller_identity" "current" {}

data "aws_vpc" "this" {
  id = var.vpc_id
}

locals {
  # Ports on the nodes. The API listens on 8443 (the unit grants no
  # CAP_NET_BIND_SERVICE); the NLB maps 443 to it.
  api_port       = 8443
  cluster_port   = 7946
  metrics_port   = 9090
  wireguard_port = 51820

  nlb_subnet_ids = length(var.nlb_subnet_ids) > 0 ? var.nlb_subnet_ids : var.subnet_ids

  # The lock the first node takes to bootstrap the cluster (created by the
  # winning instance, not by Terraform: see README.md, "Bootstrap").
  bootstrap_parameter = "/ferry/${var.name}/bootstrap"
  # The launch lifecycle hook a node completes once its /readyz answers 200.
  ready_hook = "ferry-ready"

  tags = merge(var.tags, {
    "ferry-cluster" = var.name
  })
}

# The join token: written by the first node and refreshed by every node
# (ferryd token --ttl 24h, every 6 hours); read by joining nodes. Anyone
# holding it, with network access to a node, can add a node: only the
# nodes' role may read it.
resource "aws_secretsmanager_secret" "join_token" {
  name                    = "${var.name}/join-token"
  description             = "ferry ${var.name}: current join token (rewritten by the nodes)"
  kms_key_id              = var.secrets_kms_key_arn
  recovery_window_in_days = 0
  tags                    = local.tags
}
