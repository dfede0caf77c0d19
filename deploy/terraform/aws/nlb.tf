# The network load balancer. TLS passes through to the nodes, which hold
# the API certificate for public_dns_name; client source addresses are
# preserved (instance targets), so the nodes' security group decides who
# may connect.

resource "aws_lb" "this" {
  name                             = var.name
  load_balancer_type               = "network"
  internal                         = false
  ip_address_type                  = var.dual_stack ? "dualstack" : "ipv4"
  subnets                          = local.nlb_subnet_ids
  enable_cross_zone_load_balancing = true
  tags                             = local.tags
}

resource "aws_lb_target_group" "api" {
  name                 = "${var.name}-api"
  port                 = local.api_port
  protocol             = "TCP"
  target_type          = "instance"
  vpc_id               = var.vpc_id
  deregistration_delay = 30

  health_check {
    protocol            = "HTTPS"
    port                = tostring(local.api_port)
    path                = "/readyz"
    matcher             = "200"
    interval            = 10
    timeout             = 5
    healthy_threshold   = 2
    unhealthy_threshold = 2
  }

  tags = local.tags
}

resource "aws_lb_target_group" "wireguard" {
  name                 = "${var.name}-wg"
  port                 = local.wireguard_port
  protocol             = "UDP"
  target_type          = "instance"
  vpc_id               = var.vpc_id
  deregistration_delay = 30
  # Flows to a deregistered node end at once: its clients handshake again
  # with another node (same interface key, same peers).
  connection_termination = true

  # UDP cannot be probed meaningfully: WireGuard is served by the node
  # whose API answers /readyz.
  health_check {
    protocol            = "HTTPS"
    port                = tostring(local.api_port)
    path                = "/readyz"
    matcher             = "200"
    interval            = 10
    timeout             = 5
    healthy_threshold   = 2
    unhealthy_threshold = 2
  }

  tags = local.tags
}

resource "aws_lb_listener" "api" {
  load_balancer_arn = aws_lb.this.arn
  port              = 443
  protocol          = "TCP"

  default_action {
    type             = "forward"
    target_group_arn = aws_lb_target_group.api.arn
  }

  tags = local.tags
}

resource "aws_lb_listener" "wireguard" {
  load_balancer_arn = aws_lb.this.arn
  port              = local.wireguard_port
  protocol          = "UDP"

  default_action {
    type             = "forward"
    target_group_arn = aws_lb_target_group.wireguard.arn
  }

  tags = local.tags
}

resource "aws_route53_record" "public" {
  count = var.route53_zone_id == null ? 0 : 1

  zone_id = var.route53_zone_id
  name    = var.public_dns_name
  type    = "A"

  alias {
    name                   = aws_lb.this.dns_name
    zone_id                = aws_lb.this.zone_id
    evaluate_target_health = true
  }
}

resource "aws_route53_record" "public_ipv6" {
  count = var.route53_zone_id != null && var.dual_stack ? 1 : 0

  zone_id = var.route53_zone_id
  name    = var.public_dns_name
  type    = "AAAA"

  alias {
    name                   = aws_lb.this.dns_name
    zone_id                = aws_lb.this.zone_id
    evaluate_target_health = true
  }
}
