# Detective controls, on when var.alerts_topic_arn is set. IAM cannot limit where a
# RunTask puts a task (there is no condition key for subnets or security groups), so a
# jump user can start a jumphost with any security group in the account. These rules see
# such a call through CloudTrail and undo it:
#
# - network guard: RunTask in jump's cluster with a subnet, security group or public IP
#   off the allowlist (or with no security group, which means the VPC's default one):
#   a Lambda function stops the task(s) and publishes who did what to the topic;
# - exec alert: every ExecuteCommand in jump's cluster goes to the topic, as does
#   `jump init --alerts TOPIC_ARN`.
#
# Needs a CloudTrail trail that records management events in this region (EventBridge
# receives "AWS API Call via CloudTrail" events only then), and a topic whose access
# policy lets events.amazonaws.com and the guard's role publish.

locals {
  alerts = var.alerts_topic_arn != null

  allowed_security_groups = concat([aws_security_group.jumphost.id], var.allowed_security_groups)
  allowed_subnets         = concat(var.subnets, var.allowed_subnets)

  # The cluster as a caller may name it: by name or by ARN.
  cluster_names = [var.cluster_name, { suffix = ":cluster/${var.cluster_name}" }]

  # Any one of these is enough. A tuple of unlike objects: a `for` keeps it one (a
  # conditional between tuples of different shapes would not type-check).
  off_allowlist = concat(
    [
      { networkConfiguration = { awsvpcConfiguration = { securityGroups = [{ "anything-but" = local.allowed_security_groups }] } } },
      { networkConfiguration = { awsvpcConfiguration = { securityGroups = [{ exists = false }] } } },
      { networkConfiguration = { awsvpcConfiguration = { subnets = [{ "anything-but" = local.allowed_subnets }] } } },
    ],
    [
      for clause in [{ networkConfiguration = { awsvpcConfiguration = { assignPublicIp = ["ENABLED"] } } }] :
      clause if !var.public
    ],
  )

  guard_name = "${var.name_prefix}-network-guard"
}

resource "aws_cloudwatch_event_rule" "network_guard" {
  count       = local.alerts ? 1 : 0
  name        = local.guard_name
  description = "jump: RunTask in ${var.cluster_name} with network settings off the allowlist"
  event_pattern = jsonencode({
    source        = ["aws.ecs"]
    "detail-type" = ["AWS API Call via CloudTrail"]
    detail = {
      eventSource = ["ecs.amazonaws.com"]
      eventName   = ["RunTask"]
      requestParameters = {
        cluster = local.cluster_names
        "$or"   = local.off_allowlist
      }
    }
  })
  tags = local.tags
}

resource "aws_cloudwatch_event_target" "network_guard" {
  count = local.alerts ? 1 : 0
  rule  = aws_cloudwatch_event_rule.network_guard[0].name
  arn   = aws_lambda_function.network_guard[0].arn
}

resource "aws_cloudwatch_event_rule" "exec_alert" {
  count       = local.alerts ? 1 : 0
  name        = "${var.name_prefix}-exec-alert"
  description = "jump: every ECS Exec session in ${var.cluster_name}"
  event_pattern = jsonencode({
    source        = ["aws.ecs"]
    "detail-type" = ["AWS API Call via CloudTrail"]
    detail = {
      eventSource       = ["ecs.amazonaws.com"]
      eventName         = ["ExecuteCommand"]
      requestParameters = { cluster = local.cluster_names }
    }
  })
  tags = local.tags
}

resource "aws_cloudwatch_event_target" "exec_alert" {
  count = local.alerts ? 1 : 0
  rule  = aws_cloudwatch_event_rule.exec_alert[0].name
  arn   = var.alerts_topic_arn
}

# ---- the guard function -------------------------------------------------------------

data "archive_file" "network_guard" {
  count       = local.alerts ? 1 : 0
  type        = "zip"
  source_file = "${path.module}/guard/index.py"
  output_path = "${path.module}/.terraform/jump-network-guard.zip"
}

resource "aws_cloudwatch_log_group" "network_guard" {
  count             = local.alerts ? 1 : 0
  name              = "/aws/lambda/${local.guard_name}"
  retention_in_days = var.log_retention_days
  tags              = local.tags
}

resource "aws_iam_role" "network_guard" {
  count = local.alerts ? 1 : 0
  name  = local.guard_name
  assume_role_policy = jsonencode({
    Version = "2012-10-17"
    Statement = [{
      Effect    = "Allow"
      Principal = { Service = "lambda.amazonaws.com" }
      Action    = "sts:AssumeRole"
      Condition = { StringEquals = { "aws:SourceAccount" = local.account } }
    }]
  })
  tags = local.tags
}

resource "aws_iam_role_policy" "network_guard" {
  count = local.alerts ? 1 : 0
  name  = "jump-network-guard"
  role  = aws_iam_role.network_guard[0].id
  policy = jsonencode({
    Version = "2012-10-17"
    Statement = [
      {
        Sid      = "StopTasksInJumpsCluster"
        Effect   = "Allow"
        Action   = "ecs:StopTask"
        Resource = "arn:${local.partition}:ecs:${local.region}:${local.account}:task/${var.cluster_name}/*"
      },
      {
        Sid      = "Alert"
        Effect   = "Allow"
        Action   = "sns:Publish"
        Resource = var.alerts_topic_arn
      },
      {
        Sid      = "OwnLogs"
        Effect   = "Allow"
        Action   = ["logs:CreateLogStream", "logs:PutLogEvents"]
        Resource = "${aws_cloudwatch_log_group.network_guard[0].arn}:*"
      },
    ]
  })
}

resource "aws_lambda_function" "network_guard" {
  count            = local.alerts ? 1 : 0
  function_name    = local.guard_name
  description      = "jump: stops jumphosts started with network settings off the allowlist"
  role             = aws_iam_role.network_guard[0].arn
  runtime          = "python3.12"
  handler          = "index.handler"
  filename         = data.archive_file.network_guard[0].output_path
  source_code_hash = data.archive_file.network_guard[0].output_base64sha256
  timeout          = 30
  environment {
    variables = {
      CLUSTER   = var.cluster_name
      TOPIC_ARN = var.alerts_topic_arn
    }
  }
  tags       = local.tags
  depends_on = [aws_cloudwatch_log_group.network_guard, aws_iam_role_policy.network_guard]
}

resource "aws_lambda_permission" "network_guard" {
  count         = local.alerts ? 1 : 0
  statement_id  = "EventBridgeNetworkGuard"
  action        = "lambda:InvokeFunction"
  function_name = aws_lambda_function.network_guard[0].function_name
  principal     = "events.amazonaws.com"
  source_arn    = aws_cloudwatch_event_rule.network_guard[0].arn
}
