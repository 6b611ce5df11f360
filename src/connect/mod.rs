//! Connecting to a running jumphost. Only ssh (the system OpenSSH client) for now.

pub mod ssh;
