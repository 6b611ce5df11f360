//! Connecting to a running jumphost: ssh (the system OpenSSH client) or ECS Exec
//! (our own Session Manager client).

pub mod agent;
pub mod copy;
pub mod exec;
pub mod exec_access;
pub mod forward;
pub mod local_command;
pub mod plugin;
pub mod resume;
pub mod socks;
pub mod ssh;
pub mod ssh_over_ssm;
pub mod target;
pub mod terminal;
mod wrapper;
