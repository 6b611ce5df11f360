# Optional: a warm pool of exec-mode jumphosts (what `jump pool create` makes) and the
# scheduled reaper (what `jump init --reaper` makes). Both are off unless their variables
# are set. They follow jump's own conventions exactly, so jump uses them as its own: the
# service is named jump-pool-NAME and carries jump:pool, jump:pool-ttl and jump:pool-mode,
# which ECS copies onto each task it starts (`jump up --pool NAME` claims them, `jump pool
# status --name NAME` reports them).

locals {
  pool    = var.pool_name != null
  reaper  = var.reaper_image != null
  exec_sh = file("${local.template_dir}/exec-watchdog.sh")

  # Each warm task lives pool_recycle_after_seconds, idle or not; the service replaces it.
  pool_environment = [
    { name = "JUMP_TTL_SECONDS", value = tostring(var.pool_recycle_after_seconds) },
    { name = "JUMP_IDLE_SECONDS", value = tostring(var.pool_recycle_after_seconds) },
    { name = "JUMP_POOL", value = coalesce(var.pool_name, "-") },
  ]
  # The reaper's documents are filled with the ARN-naming documents (main.tf's
  # `arn_templates`), since they name the execution role's ARN.
}

resource "aws_ecs_task_definition" "pool" {
  count = local.pool ? 1 : 0

  family                   = "${var.family}-pool"
  requires_compatibilities = ["FARGATE"]
  network_mode             = "awsvpc"
  cpu                      = var.cpu
  memory                   = var.memory
  task_role_arn            = aws_iam_role.task.arn
  execution_role_arn       = aws_iam_role.execution.arn
  container_definitions = jsonencode([{
    name         = var.container_name
    image        = var.image
    essential    = true
    entryPoint   = ["sh", "-c"]
    command      = [local.exec_sh]
    environment  = local.pool_environment
    portMappings = [{ containerPort = 22, protocol = "tcp" }]
    logConfiguration = {
      logDriver = "awslogs"
      options = {
        "awslogs-group"         = aws_cloudwatch_log_group.sessions.name
        "awslogs-region"        = local.region
        "awslogs-stream-prefix" = "jump"
        "awslogs-create-group"  = "true"
      }
    }
  }])
  tags = local.tags
}

resource "aws_ecs_service" "pool" {
  count = local.pool ? 1 : 0

  name                   = "jump-pool-${var.pool_name}"
  cluster                = local.cluster_arn
  task_definition        = aws_ecs_task_definition.pool[0].arn
  desired_count          = var.pool_size
  launch_type            = "FARGATE"
  enable_execute_command = true
  propagate_tags         = "SERVICE"

  network_configuration {
    subnets          = var.subnets
    security_groups  = [aws_security_group.jumphost.id]
    assign_public_ip = var.public
  }

  tags = merge(local.tags, {
    "jump:pool"      = var.pool_name
    "jump:pool-ttl"  = tostring(var.pool_recycle_after_seconds)
    "jump:pool-mode" = "exec"
  })
}

# -----------------------------------------------------------------------------------------
# The reaper: `jump gc` as a Fargate task, started by EventBridge Scheduler.
# -----------------------------------------------------------------------------------------

resource "aws_iam_role" "reaper" {
  count = local.reaper ? 1 : 0

  name               = "${var.name_prefix}-reaper"
  description        = "jump: the scheduled reaper's identity; lists, describes and stops the cluster's tasks only"
  assume_role_policy = local.role_docs.trust
  tags               = local.tags
}

resource "aws_iam_role_policy" "reaper" {
  count = local.reaper ? 1 : 0

  name   = "jump-reaper"
  role   = aws_iam_role.reaper[0].id
  policy = local.arn_docs.reaper_task
}

resource "aws_iam_role" "reaper_runs" {
  count = local.reaper ? 1 : 0

  name               = "${var.name_prefix}-reaper-runs"
  description        = "jump: lets EventBridge Scheduler start the reaper task in the cluster, nothing else"
  assume_role_policy = local.arn_docs.scheduler_trust
  tags               = local.tags
}

resource "aws_iam_role_policy" "reaper_runs" {
  count = local.reaper ? 1 : 0

  name   = "jump-reaper-run"
  role   = aws_iam_role.reaper_runs[0].id
  policy = local.arn_docs.reaper_scheduler
}

resource "aws_ecs_task_definition" "reaper" {
  count = local.reaper ? 1 : 0

  family                   = "${var.name_prefix}-reaper"
  requires_compatibilities = ["FARGATE"]
  network_mode             = "awsvpc"
  cpu                      = 256
  memory                   = 512
  task_role_arn            = aws_iam_role.reaper[0].arn
  execution_role_arn       = aws_iam_role.execution.arn
  container_definitions = jsonencode([{
    name        = "reaper"
    image       = var.reaper_image
    essential   = true
    command     = ["gc", "--cluster", var.cluster_name, "--json"]
    environment = [{ name = "JUMP_STATE_DIR", value = "/tmp/jump" }]
    logConfiguration = {
      logDriver = "awslogs"
      options = {
        "awslogs-group"         = aws_cloudwatch_log_group.sessions.name
        "awslogs-region"        = local.region
        "awslogs-stream-prefix" = "reaper"
      }
    }
  }])
  tags = local.tags
}

resource "aws_scheduler_schedule" "reaper" {
  count = local.reaper ? 1 : 0

  name                = "${var.name_prefix}-reaper"
  description         = "jump: runs jump gc in the cluster"
  schedule_expression = var.reaper_every_minutes == 1 ? "rate(1 minute)" : "rate(${var.reaper_every_minutes} minutes)"

  flexible_time_window {
    mode = "OFF"
  }

  target {
    arn      = local.cluster_arn
    role_arn = aws_iam_role.reaper_runs[0].arn

    ecs_parameters {
      # The family without a revision: each run takes the latest.
      task_definition_arn = "arn:${local.partition}:ecs:${local.region}:${local.account}:task-definition/${aws_ecs_task_definition.reaper[0].family}"
      task_count          = 1
      launch_type         = "FARGATE"

      network_configuration {
        subnets          = var.subnets
        security_groups  = [aws_security_group.jumphost.id]
        assign_public_ip = var.public
      }
    }
  }
}
