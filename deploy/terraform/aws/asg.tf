# The nodes: a launch template whose user data installs ferryd, fetches the
# secrets, bootstraps or joins the cluster and starts the systemd unit, and
# an Auto Scaling group across the subnets' zones.

locals {
  # The unit and its drop-in from deploy/systemd, comment lines dropped to
  # keep the user data under EC2's 16 KB limit.
  systemd_unit = join("\n", [
    for l in split("\n", file("${path.module}/../../systemd/ferryd.service")) : l if !startswith(l, "#")
  ])
  systemd_dropin = join("\n", [
    for l in split("\n", file("${path.module}/../../systemd/ferryd.service.d/10-dataplane.conf")) : l if !startswith(l, "#")
  ])
}

resource "aws_launch_template" "node" {
  name_prefix            = "${var.name}-node-"
  image_id               = var.ami_id
  instance_type          = var.instance_type
  vpc_security_group_ids = [aws_security_group.node.id]
  update_default_version = true

  iam_instance_profile {
    arn = aws_iam_instance_profile.node.arn
  }

  # IMDSv2 only, and not from containers or forwarded traffic (hop limit 1).
  metadata_options {
    http_endpoint               = "enabled"
    http_tokens                 = "required"
    http_put_response_hop_limit = 1
  }

  user_data = base64encode(templatefile("${path.module}/user_data.sh.tftpl", {
    cluster_name           = var.name
    region                 = data.aws_region.current.name
    asg_name               = var.name
    ready_hook             = local.ready_hook
    bootstrap_parameter    = local.bootstrap_parameter
    ferry_version          = var.ferry_version
    ferryd_url             = var.ferryd_url
    ferryd_sha256          = var.ferryd_sha256
    public_dns_name        = var.public_dns_name
    master_key_secret_arn  = var.master_key_secret_arn
    oidc_client_secret_arn = var.oidc_client_secret_arn
    join_token_secret_arn  = aws_secretsmanager_secret.join_token.arn
    api_port               = local.api_port
    cluster_port           = local.cluster_port
    metrics_port           = local.metrics_port
    wireguard_port         = local.wireguard_port
    service_config = templatefile("${path.module}/services.yaml.tftpl", {
      public_dns_name   = var.public_dns_name
      oidc_issuer       = var.oidc_issuer
      oidc_client_id    = var.oidc_client_id
      oidc_scopes       = var.oidc_scopes
      oidc_groups_claim = var.oidc_groups_claim
      admin_groups      = var.admin_groups
      client_pool       = var.client_pool
      client_pool6      = var.client_pool6
      wireguard_port    = local.wireguard_port
      dns_forwarder     = var.dns_forwarder
      vpc_resolver      = cidrhost(data.aws_vpc.this.cidr_block, 2)
    })
    extra_config_yaml = var.extra_config_yaml
    systemd_unit      = local.systemd_unit
    systemd_dropin    = local.systemd_dropin
  }))

  tag_specifications {
    resource_type = "instance"
    tags          = merge(local.tags, { Name = "${var.name}-node", "ferry-version" = var.ferry_version })
  }

  tag_specifications {
    resource_type = "volume"
    tags          = local.tags
  }

  tags = local.tags
}

resource "aws_autoscaling_group" "nodes" {
  name     = var.name
  min_size = var.node_count
  # One spare, for launching a replacement before removing an old node.
  max_size            = var.node_count + 1
  desired_capacity    = var.node_count
  vpc_zone_identifier = var.subnet_ids
  target_group_arns   = [aws_lb_target_group.api.arn, aws_lb_target_group.wireguard.arn]
  # EC2, not ELB: a node whose /readyz fails (no quorum, catching up) must
  # not be terminated, or losing quorum would make the group destroy the
  # very nodes that hold the state. The NLB still stops sending traffic to
  # it, and the launch hook below gates new nodes on /readyz.
  health_check_type         = "EC2"
  health_check_grace_period = 300
  termination_policies      = ["OldestLaunchTemplate", "OldestInstance"]

  launch_template {
    id      = aws_launch_template.node.id
    version = aws_launch_template.node.latest_version
  }

  # A new instance stays Pending:Wait until its user data completes this
  # hook (after its own /readyz answers 200), and is terminated if it has
  # not within 30 minutes.
  initial_lifecycle_hook {
    name                 = local.ready_hook
    lifecycle_transition = "autoscaling:EC2_INSTANCE_LAUNCHING"
    default_result       = "ABANDON"
    heartbeat_timeout    = 1800
  }

  # Rolling replacement by instance refresh: one node at a time (66% of 3
  # stay healthy), pausing after each third so that an administrator runs
  # ferryctl cluster remove for the node just replaced. Off by default:
  # without that removal the second replacement loses quorum. See README.md,
  # "Rolling replacement".
  dynamic "instance_refresh" {
    for_each = var.enable_instance_refresh ? [1] : []

    content {
      strategy = "Rolling"

      preferences {
        min_healthy_percentage = 66
        instance_warmup        = 120
        skip_matching          = true
        checkpoint_percentages = [34, 67, 100]
        checkpoint_delay       = var.instance_refresh_checkpoint_delay
      }
    }
  }

  dynamic "tag" {
    for_each = local.tags

    content {
      key                 = tag.key
      value               = tag.value
      propagate_at_launch = true
    }
  }
}
