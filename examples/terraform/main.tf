# Prerequisites for `jump`, the same set `jump init` creates: an ECS cluster (optional),
# the task execution role and the task role, the session log group, and a security group
# with no inbound rules. The output `jump_toml` is a ready jump.toml (mode = "exec").

data "aws_partition" "current" {}
data "aws_region" "current" {}
data "aws_caller_identity" "current" {}

locals {
  tags = merge(var.tags, { "managed-by" = "jump" })

  partition = data.aws_partition.current.partition
  region    = data.aws_region.current.name
  account   = data.aws_caller_identity.current.account_id

  cluster_name = var.create_cluster ? aws_ecs_cluster.this[0].name : var.cluster_name
  cluster_arn  = "arn:${local.partition}:ecs:${local.region}:${local.account}:cluster/${var.cluster_name}"

  exec_logging = var.exec_log_group_name != null
  exec_kms     = var.kms_key_arn != null

  # A private ECR image (ACCOUNT.dkr.ecr.REGION.amazonaws.com[.cn]/REPOSITORY[:TAG|@DIGEST])
  # gets a pull grant on its own repository; an image from any other registry gets none.
  ecr_image      = try(regex("^(\\d{12})\\.dkr\\.ecr(?:-fips)?\\.([a-z0-9-]+)\\.amazonaws\\.com(\\.cn)?/([^:@]+)", var.image), null)
  ecr_repository = local.ecr_image == null ? "" : format(
    "arn:%s:ecr:%s:%s:repository/%s",
    local.ecr_image[2] == ".cn" ? "aws-cn" : (startswith(local.ecr_image[1], "us-gov-") ? "aws-us-gov" : "aws"),
    local.ecr_image[1], local.ecr_image[0], local.ecr_image[3],
  )

  # ---------------------------------------------------------------------------------------
  # Policy documents: ONE source of truth.
  #
  # The JSON files in templates/ are the documents `jump init` embeds. They use `{{name}}`
  # placeholders, which templatefile() cannot read (it uses ${...}, and the documents also
  # contain IAM's own ${aws:userid}). So they are read with file() and the placeholders are
  # filled below: split on "{{", look the name up in the values map, keep the text after
  # "}}". A placeholder missing from the map is an error, as in jump's own renderer.
  #
  # There are two maps because the user policy (and the reaper's schedule role) names the
  # role ARNs, and the roles' own documents must not depend on the roles (that would be a
  # cycle).
  # ---------------------------------------------------------------------------------------
  template_dir = "${path.module}/../../templates"

  role_templates = {
    trust         = file("${local.template_dir}/ecs-tasks-trust-policy.json")
    execution     = file("${local.template_dir}/execution-role-policy.json")
    execution_ecr = file("${local.template_dir}/execution-role-ecr-policy.json")
    task          = file("${local.template_dir}/task-role-policy.json")
    task_logging  = file("${local.template_dir}/task-role-logging-policy.json")
    task_kms      = file("${local.template_dir}/task-role-kms-policy.json")
  }

  arn_templates = {
    user             = file("${local.template_dir}/user-policy.json")
    user_kms         = file("${local.template_dir}/user-kms-policy.json")
    reaper_task      = file("${local.template_dir}/reaper-task-role-policy.json")
    scheduler_trust  = file("${local.template_dir}/scheduler-trust-policy.json")
    reaper_scheduler = file("${local.template_dir}/reaper-scheduler-policy.json")
  }

  role_values = {
    partition      = local.partition
    region         = local.region
    account        = local.account
    cluster        = var.cluster_name
    family         = var.family
    log_group      = aws_cloudwatch_log_group.sessions.name
    exec_log_group = local.exec_logging ? var.exec_log_group_name : ""
    kms_key_arn    = local.exec_kms ? var.kms_key_arn : ""
    ecr_repository = local.ecr_repository
  }

  arn_values = merge(local.role_values, {
    task_role      = aws_iam_role.task.arn
    execution_role = aws_iam_role.execution.arn
    reaper_family  = "${var.name_prefix}-reaper"
    reaper_role    = "arn:${local.partition}:iam::${local.account}:role/${var.name_prefix}-reaper"
  })

  role_docs = {
    for name, text in local.role_templates : name => join("", concat(
      [split("{{", text)[0]],
      [
        for chunk in slice(split("{{", text), 1, length(split("{{", text))) : join("", [
          local.role_values[trimspace(split("}}", chunk)[0])],
          join("}}", slice(split("}}", chunk), 1, length(split("}}", chunk)))),
        ])
      ],
    ))
  }

  arn_docs = {
    for name, text in local.arn_templates : name => join("", concat(
      [split("{{", text)[0]],
      [
        for chunk in slice(split("{{", text), 1, length(split("{{", text))) : join("", [
          local.arn_values[trimspace(split("}}", chunk)[0])],
          join("}}", slice(split("}}", chunk), 1, length(split("}}", chunk)))),
        ])
      ],
    ))
  }
}

# -----------------------------------------------------------------------------------------
# ECS cluster (optional). executeCommandConfiguration only when a KMS key or an ECS Exec
# log group is given; otherwise ECS's defaults apply.
# -----------------------------------------------------------------------------------------

resource "aws_ecs_cluster" "this" {
  count = var.create_cluster ? 1 : 0

  name = var.cluster_name

  dynamic "configuration" {
    for_each = local.exec_kms || local.exec_logging ? [1] : []

    content {
      execute_command_configuration {
        kms_key_id = var.kms_key_arn
        logging    = local.exec_logging ? "OVERRIDE" : "DEFAULT"

        dynamic "log_configuration" {
          for_each = local.exec_logging ? [1] : []

          content {
            cloud_watch_log_group_name     = var.exec_log_group_name
            cloud_watch_encryption_enabled = false
          }
        }
      }
    }
  }

  # Marks the cluster as jump's alone: `jump gc` then also stops any task in it that ECS
  # created longer ago than the longest session may live, whatever its family.
  tags = merge(local.tags, { "jump:managed-by" = "terraform" })

  depends_on = [aws_cloudwatch_log_group.exec]
}

# -----------------------------------------------------------------------------------------
# Log groups
# -----------------------------------------------------------------------------------------

resource "aws_cloudwatch_log_group" "sessions" {
  name              = var.log_group_name
  retention_in_days = var.log_retention_days
  tags              = local.tags
}

resource "aws_cloudwatch_log_group" "exec" {
  count = local.exec_logging && var.create_exec_log_group ? 1 : 0

  name              = var.exec_log_group_name
  retention_in_days = var.log_retention_days
  tags              = local.tags
}

# -----------------------------------------------------------------------------------------
# Security group: nothing in; HTTPS out (ECS, SSM, ECR, CloudWatch Logs endpoints), plus
# whatever var.extra_egress adds for the hosts you forward to. Terraform removes the
# default allow-all egress rule of a new group, so these rules are the whole story.
# -----------------------------------------------------------------------------------------

resource "aws_security_group" "jumphost" {
  name        = "${var.name_prefix}-jumphost"
  description = "jump jumphost tasks: no inbound, HTTPS outbound"
  vpc_id      = var.vpc_id
  tags        = merge(local.tags, { Name = "${var.name_prefix}-jumphost" })
}

resource "aws_vpc_security_group_egress_rule" "https" {
  security_group_id = aws_security_group.jumphost.id
  description       = "HTTPS to AWS APIs (ECS, SSM messages, ECR, CloudWatch Logs)"
  ip_protocol       = "tcp"
  from_port         = 443
  to_port           = 443
  cidr_ipv4         = "0.0.0.0/0"
  tags              = local.tags
}

resource "aws_vpc_security_group_egress_rule" "extra" {
  for_each = {
    for r in var.extra_egress :
    join("-", [
      r.ip_protocol,
      r.from_port == null ? "any" : tostring(r.from_port),
      r.to_port == null ? "any" : tostring(r.to_port),
      coalesce(r.cidr_ipv4, r.referenced_security_group_id),
    ]) => r
  }

  security_group_id            = aws_security_group.jumphost.id
  description                  = each.value.description
  ip_protocol                  = each.value.ip_protocol
  from_port                    = each.value.from_port
  to_port                      = each.value.to_port
  cidr_ipv4                    = each.value.cidr_ipv4
  referenced_security_group_id = each.value.referenced_security_group_id
  tags                         = local.tags
}

# -----------------------------------------------------------------------------------------
# IAM: the task execution role (ECS pulls the image, writes the logs) and the task role
# (what the jumphost itself may do: open ECS Exec channels, nothing else).
# -----------------------------------------------------------------------------------------

resource "aws_iam_role" "execution" {
  name               = "${var.name_prefix}-task-execution"
  description        = "jump: lets ECS pull the jumphost image and write its log stream"
  assume_role_policy = local.role_docs.trust
  tags               = local.tags
}

resource "aws_iam_role_policy" "execution" {
  name   = "jump-execution"
  role   = aws_iam_role.execution.id
  policy = local.role_docs.execution
}

resource "aws_iam_role_policy" "execution_ecr" {
  count  = local.ecr_repository != "" ? 1 : 0
  name   = "jump-ecr-pull"
  role   = aws_iam_role.execution.id
  policy = local.role_docs.execution_ecr
}

resource "aws_iam_role" "task" {
  name               = "${var.name_prefix}-task"
  description        = "jump: the jumphost's own identity; ECS Exec channels only"
  assume_role_policy = local.role_docs.trust
  tags               = local.tags
}

resource "aws_iam_role_policy" "task_exec" {
  name   = "jump-ecs-exec"
  role   = aws_iam_role.task.id
  policy = local.role_docs.task
}

resource "aws_iam_role_policy" "task_logging" {
  count = local.exec_logging ? 1 : 0

  name   = "jump-session-logging"
  role   = aws_iam_role.task.id
  policy = local.role_docs.task_logging
}

resource "aws_iam_role_policy" "task_kms" {
  count = local.exec_kms ? 1 : 0

  name   = "jump-session-kms"
  role   = aws_iam_role.task.id
  policy = local.role_docs.task_kms
}

# -----------------------------------------------------------------------------------------
# Optional: the least-privilege policy for the people (or CI roles) who run `jump`.
# Attach it to a group or role yourself; this module does not decide who gets it.
# -----------------------------------------------------------------------------------------

resource "aws_iam_policy" "user" {
  count = var.create_user_policy ? 1 : 0

  name        = "${var.name_prefix}-user"
  description = "jump: start, reach and stop your own jumphosts in cluster ${var.cluster_name}"
  policy      = local.arn_docs.user
  tags        = local.tags
}

resource "aws_iam_policy" "user_kms" {
  count = var.create_user_policy && local.exec_kms ? 1 : 0

  name        = "${var.name_prefix}-user-kms"
  description = "jump: encrypt your own ECS Exec / port-forwarding sessions with the cluster's KMS key"
  policy      = local.arn_docs.user_kms
  tags        = local.tags
}

# -----------------------------------------------------------------------------------------
# jump.toml
# -----------------------------------------------------------------------------------------

locals {
  # jsonencode() of a string or a list of strings is also valid TOML.
  jump_toml = <<-EOT
    # jump.toml, generated by examples/terraform. The security group has no inbound
    # rules, so jumphosts are reached through ECS Exec (mode = "exec"), not ssh.
    cluster = ${jsonencode(local.cluster_name)}
    subnets = ${jsonencode(var.subnets)}
    security_groups = ${jsonencode([aws_security_group.jumphost.id])}
    public = ${var.public}
    mode = "exec"

    image = ${jsonencode(var.image)}
    cpu = ${var.cpu}
    memory = ${var.memory}
    ttl = ${jsonencode(var.ttl)}
    idle_timeout = ${jsonencode(var.idle_timeout)}
    wait_timeout = ${jsonencode(var.wait_timeout)}

    log_group = ${jsonencode(aws_cloudwatch_log_group.sessions.name)}
    execution_role = ${jsonencode(aws_iam_role.execution.arn)}
    task_role = ${jsonencode(aws_iam_role.task.arn)}
    family = ${jsonencode(var.family)}
    container_name = ${jsonencode(var.container_name)}
    login_user = ${jsonencode(var.login_user)}
  EOT
}
