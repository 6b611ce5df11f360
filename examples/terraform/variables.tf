# ---------------------------------------------------------------------------------------
# Network: where the jumphost tasks run
# ---------------------------------------------------------------------------------------

variable "vpc_id" {
  description = "VPC that holds the subnets; the jumphost security group is created in it."
  type        = string
}

variable "subnets" {
  description = "Subnet IDs for the jumphost task's network interface (jump.toml `subnets`)."
  type        = list(string)

  validation {
    condition     = length(var.subnets) > 0
    error_message = "Give at least one subnet."
  }
}

variable "public" {
  description = "Give the jumphost a public IP (jump.toml `public`). Only useful in subnets with an internet gateway; with no inbound rules it is only the task's own way out to AWS APIs."
  type        = bool
  default     = false
}

variable "extra_egress" {
  description = <<-EOT
    Additional outbound rules for the jumphost security group, on top of TCP 443 to anywhere.
    Add one for every place you forward to, e.g. a database:
      { description = "orders db", ip_protocol = "tcp", from_port = 5432, to_port = 5432, cidr_ipv4 = "10.0.0.0/16" }
    Give either cidr_ipv4 or referenced_security_group_id. Leave out the ports for
    ip_protocol = "-1" (all traffic).
  EOT
  type = list(object({
    description                  = string
    ip_protocol                  = string
    from_port                    = optional(number)
    to_port                      = optional(number)
    cidr_ipv4                    = optional(string)
    referenced_security_group_id = optional(string)
  }))
  default = []

  validation {
    condition = alltrue([
      for r in var.extra_egress : (r.cidr_ipv4 == null) != (r.referenced_security_group_id == null)
    ])
    error_message = "Each extra_egress rule needs exactly one of cidr_ipv4 or referenced_security_group_id."
  }
}

# ---------------------------------------------------------------------------------------
# ECS cluster and ECS Exec settings
# ---------------------------------------------------------------------------------------

variable "create_cluster" {
  description = "Create the ECS cluster. Set false to use an existing cluster called `cluster_name` (its ECS Exec settings are then left as they are)."
  type        = bool
  default     = true
}

variable "cluster_name" {
  description = "Name of the ECS cluster to create or use (jump.toml `cluster`)."
  type        = string
  default     = "jump"
}

variable "kms_key_arn" {
  description = "Optional KMS key ARN (a key ARN, not an alias) to encrypt ECS Exec / port-forwarding session data. Adds kms:Decrypt to the task role and sets the cluster's executeCommandConfiguration when the module creates the cluster. Users also need templates/user-kms-policy.json."
  type        = string
  default     = null
}

variable "exec_log_group_name" {
  description = "Optional CloudWatch Logs group for ECS Exec session transcripts (logging OVERRIDE). Keep it separate from `log_group_name` if jump users must not read each other's transcripts: the user policy can read the session log group."
  type        = string
  default     = null
}

variable "create_exec_log_group" {
  description = "Create `exec_log_group_name` (with the same retention). Set false if it already exists."
  type        = bool
  default     = true
}

# ---------------------------------------------------------------------------------------
# Logs
# ---------------------------------------------------------------------------------------

variable "log_group_name" {
  description = "CloudWatch Logs group for the jumphost containers' output (jump.toml `log_group`)."
  type        = string
  default     = "/jump/sessions"
}

variable "log_retention_days" {
  description = "Retention of the log groups this module creates, in days."
  type        = number
  default     = 30
}

# ---------------------------------------------------------------------------------------
# IAM
# ---------------------------------------------------------------------------------------

variable "name_prefix" {
  description = "Prefix for the IAM roles, security group and optional user policies."
  type        = string
  default     = "jump"
}

variable "create_user_policy" {
  description = "Also create customer managed IAM policies from templates/user-policy.json (and user-kms-policy.json when kms_key_arn is set) for you to attach to your engineers' group or role. The JSON is output either way."
  type        = bool
  default     = false
}

# ---------------------------------------------------------------------------------------
# The rest of jump.toml
# ---------------------------------------------------------------------------------------

variable "image" {
  description = "Jumphost image (jump.toml `image`). In exec mode any image with `sh` works."
  type        = string
}

variable "cpu" {
  description = "Task CPU units (jump.toml `cpu`); a valid Fargate size."
  type        = number
  default     = 256
}

variable "memory" {
  description = "Task memory in MiB (jump.toml `memory`); a valid Fargate size."
  type        = number
  default     = 512
}

variable "ttl" {
  description = "Hard lifetime of a jumphost (jump.toml `ttl`)."
  type        = string
  default     = "1h"
}

variable "idle_timeout" {
  description = "Stop a jumphost after this long unused (jump.toml `idle_timeout`)."
  type        = string
  default     = "15m"
}

variable "wait_timeout" {
  description = "Give up if the task is not reachable by then (jump.toml `wait_timeout`)."
  type        = string
  default     = "5m"
}

variable "family" {
  description = "Task definition family jump registers (jump.toml `family`); the user policy only allows this family."
  type        = string
  default     = "jump-jumphost"
}

variable "container_name" {
  description = "Container name in the task definition (jump.toml `container_name`)."
  type        = string
  default     = "jumphost"
}

variable "login_user" {
  description = "User to log in as (jump.toml `login_user`)."
  type        = string
  default     = "jump"
}

variable "tags" {
  description = "Tags added to every resource, next to `managed-by = jump`."
  type        = map(string)
  default     = {}
}

# ---------------------------------------------------------------------------------------
# Detective controls (detective.tf)
# ---------------------------------------------------------------------------------------

variable "alerts_topic_arn" {
  description = "SNS topic for the detective controls: a RunTask in jump's cluster off the network allowlist is stopped and reported, and every ExecuteCommand is reported. Null: no detective controls. Needs a CloudTrail trail recording management events, and a topic policy that lets events.amazonaws.com publish."
  type        = string
  default     = null
}

variable "allowed_security_groups" {
  description = "Security groups a task in jump's cluster may have besides the jumphost group this module creates (for instance those of services whose consoles `jump run` starts there)."
  type        = list(string)
  default     = []
}

variable "allowed_subnets" {
  description = "Subnets a task in jump's cluster may use besides var.subnets."
  type        = list(string)
  default     = []
}

# ---------------------------------------------------------------------------------------
# A warm pool and the scheduled reaper (pool.tf)
# ---------------------------------------------------------------------------------------

variable "pool_name" {
  description = "A warm pool of exec-mode jumphosts, the service jump-pool-NAME that `jump up --pool NAME` claims from (what `jump pool create --name NAME` makes). Null: no pool."
  type        = string
  default     = null
  validation {
    condition     = var.pool_name == null || can(regex("^[a-z][a-z0-9-]{0,31}$", var.pool_name))
    error_message = "pool_name: lower-case letters, digits and '-', starting with a letter, at most 32 characters (as jump pool create takes it)."
  }
}

variable "pool_size" {
  description = "How many warm jumphosts the pool keeps (1 to 20)."
  type        = number
  default     = 2
  validation {
    condition     = var.pool_size >= 1 && var.pool_size <= 20
    error_message = "pool_size: 1 to 20."
  }
}

variable "pool_recycle_after_seconds" {
  description = "Each warm jumphost is replaced after this long, idle or not (600 to 86400; jump pool create's --recycle-after)."
  type        = number
  default     = 14400
  validation {
    condition     = var.pool_recycle_after_seconds >= 600 && var.pool_recycle_after_seconds <= 86400
    error_message = "pool_recycle_after_seconds: 600 to 86400."
  }
}

variable "reaper_image" {
  description = "The scheduled reaper (what `jump init --reaper` makes): an image whose entrypoint is jump (dockerfiles/reaper). Null: no reaper."
  type        = string
  default     = null
}

variable "reaper_every_minutes" {
  description = "How often the reaper runs `jump gc`, in minutes (5 to 1440)."
  type        = number
  default     = 15
  validation {
    condition     = var.reaper_every_minutes >= 5 && var.reaper_every_minutes <= 1440
    error_message = "reaper_every_minutes: 5 to 1440."
  }
}
