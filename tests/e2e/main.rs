//! End-to-end tests: the real `jump` binary against the local AWS sandbox
//! (tests/sandbox). One test binary, so the AWS stack is linked once.

mod config;
mod cp;
mod doctor;
mod exec;
mod faults;
mod forward;
mod init;
mod install;
mod long;
mod pick;
mod pool;
mod proxy;
mod run;
mod signals;
mod smoke;
mod support;
mod up;
mod workflows;
