# One output per jump.toml key, then the whole file, then the user policy documents.

output "cluster" {
  description = "jump.toml `cluster`: the ECS cluster name."
  value       = local.cluster_name
}

output "cluster_arn" {
  description = "ARN of the ECS cluster."
  value       = local.cluster_arn
}

output "subnets" {
  description = "jump.toml `subnets`."
  value       = var.subnets
}

output "security_groups" {
  description = "jump.toml `security_groups`: the jumphost security group (no inbound rules)."
  value       = [aws_security_group.jumphost.id]
}

output "public" {
  description = "jump.toml `public`."
  value       = var.public
}

output "mode" {
  description = "jump.toml `mode`: always \"exec\", since nothing may connect in."
  value       = "exec"
}

output "image" {
  description = "jump.toml `image`."
  value       = var.image
}

output "cpu" {
  description = "jump.toml `cpu`."
  value       = var.cpu
}

output "memory" {
  description = "jump.toml `memory`."
  value       = var.memory
}

output "ttl" {
  description = "jump.toml `ttl`."
  value       = var.ttl
}

output "idle_timeout" {
  description = "jump.toml `idle_timeout`."
  value       = var.idle_timeout
}

output "wait_timeout" {
  description = "jump.toml `wait_timeout`."
  value       = var.wait_timeout
}

output "log_group" {
  description = "jump.toml `log_group`: the session log group."
  value       = aws_cloudwatch_log_group.sessions.name
}

output "execution_role" {
  description = "jump.toml `execution_role`: ARN of the task execution role."
  value       = aws_iam_role.execution.arn
}

output "task_role" {
  description = "jump.toml `task_role`: ARN of the task role."
  value       = aws_iam_role.task.arn
}

output "family" {
  description = "jump.toml `family`."
  value       = var.family
}

output "container_name" {
  description = "jump.toml `container_name`."
  value       = var.container_name
}

output "login_user" {
  description = "jump.toml `login_user`."
  value       = var.login_user
}

output "jump_toml" {
  description = "A complete jump.toml for these resources: terraform output -raw jump_toml > jump.toml"
  value       = local.jump_toml
}

output "user_policy_json" {
  description = "templates/user-policy.json filled in for these resources: what a jump user needs."
  value       = local.arn_docs.user
}

output "user_kms_policy_json" {
  description = "templates/user-kms-policy.json filled in, or null when no KMS key is used."
  value       = local.exec_kms ? local.arn_docs.user_kms : null
}

output "user_policy_arn" {
  description = "ARN of the created user policy, when create_user_policy is true."
  value       = var.create_user_policy ? aws_iam_policy.user[0].arn : null
}

output "user_kms_policy_arn" {
  description = "ARN of the created KMS user policy, when create_user_policy is true and a KMS key is used."
  value       = var.create_user_policy && local.exec_kms ? aws_iam_policy.user_kms[0].arn : null
}
