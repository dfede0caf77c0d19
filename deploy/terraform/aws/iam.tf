# The nodes' role: read the two secrets and the join token, rewrite the
# join token, take the bootstrap lock, find peers by tag, and complete their
# own launch lifecycle hook. Nothing else.

data "aws_iam_policy_document" "assume" {
  statement {
    actions = ["sts:AssumeRole"]

    principals {
      type        = "Service"
      identifiers = ["ec2.amazonaws.com"]
    }
  }
}

resource "aws_iam_role" "node" {
  name               = "${var.name}-node"
  assume_role_policy = data.aws_iam_policy_document.assume.json
  tags               = local.tags
}

data "aws_iam_policy_document" "node" {
  statement {
    sid     = "ReadSecrets"
    actions = ["secretsmanager:GetSecretValue"]
    resources = [
      var.master_key_secret_arn,
      var.oidc_client_secret_arn,
      aws_secretsmanager_secret.join_token.arn,
    ]
  }

  statement {
    sid       = "WriteJoinToken"
    actions   = ["secretsmanager:PutSecretValue"]
    resources = [aws_secretsmanager_secret.join_token.arn]
  }

  dynamic "statement" {
    for_each = var.secrets_kms_key_arn == null ? [] : [var.secrets_kms_key_arn]

    content {
      sid       = "DecryptSecrets"
      actions   = ["kms:Decrypt", "kms:GenerateDataKey"]
      resources = [statement.value]

      condition {
        test     = "StringEquals"
        variable = "kms:ViaService"
        values   = ["secretsmanager.${data.aws_region.current.name}.amazonaws.com"]
      }
    }
  }

  # ec2:DescribeInstances supports no resource-level restriction; the
  # nodes filter on the ferry-cluster tag themselves.
  statement {
    sid       = "FindPeers"
    actions   = ["ec2:DescribeInstances"]
    resources = ["*"]
  }

  statement {
    sid     = "BootstrapLock"
    actions = ["ssm:PutParameter", "ssm:GetParameter"]
    resources = [
      "arn:${data.aws_partition.current.partition}:ssm:${data.aws_region.current.name}:${data.aws_caller_identity.current.account_id}:parameter${local.bootstrap_parameter}",
    ]
  }

  statement {
    sid     = "CompleteReadyHook"
    actions = ["autoscaling:CompleteLifecycleAction"]
    resources = [
      "arn:${data.aws_partition.current.partition}:autoscaling:${data.aws_region.current.name}:${data.aws_caller_identity.current.account_id}:autoScalingGroup:*:autoScalingGroupName/${var.name}",
    ]
  }
}

resource "aws_iam_role_policy" "node" {
  name   = "${var.name}-node"
  role   = aws_iam_role.node.id
  policy = data.aws_iam_policy_document.node.json
}

resource "aws_iam_role_policy_attachment" "ssm_core" {
  count = var.enable_ssm_session_manager ? 1 : 0

  role       = aws_iam_role.node.name
  policy_arn = "arn:${data.aws_partition.current.partition}:iam::aws:policy/AmazonSSMManagedInstanceCore"
}

resource "aws_iam_instance_profile" "node" {
  name = "${var.name}-node"
  role = aws_iam_role.node.name
  tags = local.tags
}
