//! `jump doctor`: every prerequisite of a jump session or an ECS Exec session, checked
//! one by one, each with a verdict a user can act on.
//!
//! Checks are named (`exec-agent`, `task-role-channels`, ...) so that scripts can read
//! `--json` and so that errors elsewhere (`jump exec`, `jump up`) can point at the
//! check that explains them. Each module checks one layer of the stack:
//! [`identity`] (credentials, what the caller may do), [`cluster`] (the cluster and its
//! exec settings), [`task`] (a running task and its definition), [`role`] (the task
//! role's permissions, by IAM policy simulation), [`network`] (routes, VPC endpoints,
//! security-group egress) and [`logs`] (log groups).

pub mod cluster;
pub mod identity;
pub mod logs;
pub mod network;
pub mod role;
pub mod task;

use serde::Serialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Status {
    Pass,
    Warn,
    Fail,
}

/// One verdict. `fix` is present for WARN and FAIL.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Check {
    pub id: &'static str,
    pub status: Status,
    pub summary: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fix: Option<String>,
}

impl Check {
    pub fn pass(id: &'static str, summary: impl Into<String>) -> Self {
        Check {
            id,
            status: Status::Pass,
            summary: summary.into(),
            fix: None,
        }
    }

    pub fn warn(id: &'static str, summary: impl Into<String>, fix: impl Into<String>) -> Self {
        Check {
            id,
            status: Status::Warn,
            summary: summary.into(),
            fix: Some(fix.into()),
        }
    }

    pub fn fail(id: &'static str, summary: impl Into<String>, fix: impl Into<String>) -> Self {
        Check {
            id,
            status: Status::Fail,
            summary: summary.into(),
            fix: Some(fix.into()),
        }
    }
}

/// Every check made, in order.
#[derive(Debug, Default, Serialize)]
pub struct Report {
    pub checks: Vec<Check>,
}

impl Report {
    pub fn add(&mut self, check: Check) {
        self.checks.push(check);
    }

    pub fn extend(&mut self, checks: impl IntoIterator<Item = Check>) {
        self.checks.extend(checks);
    }

    pub fn failed(&self) -> bool {
        self.checks.iter().any(|c| c.status == Status::Fail)
    }

    /// One line per check, the fix indented under it.
    pub fn render(&self) -> String {
        let mut text = String::new();
        for check in &self.checks {
            let status = match check.status {
                Status::Pass => "PASS",
                Status::Warn => "WARN",
                Status::Fail => "FAIL",
            };
            text.push_str(&format!("{status}  {:<22} {}\n", check.id, check.summary));
            if let Some(fix) = &check.fix {
                text.push_str(&format!("      {:<22} fix: {fix}\n", ""));
            }
        }
        let count = |s| self.checks.iter().filter(|c| c.status == s).count();
        text.push_str(&format!(
            "\n{} passed, {} warnings, {} failed\n",
            count(Status::Pass),
            count(Status::Warn),
            count(Status::Fail)
        ));
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn report_renders_fixes_and_counts_and_fails_only_on_fail() {
        let mut report = Report::default();
        report.add(Check::pass("cluster", "platform is ACTIVE"));
        report.add(Check::warn("init-process", "not enabled", "set it"));
        assert!(!report.failed());
        report.add(Check::fail("exec-agent", "STOPPED", "restart the task"));
        assert!(report.failed());
        let text = report.render();
        assert!(text.contains("FAIL  exec-agent"));
        assert!(text.contains("fix: restart the task"));
        assert!(text.ends_with("1 passed, 1 warnings, 1 failed\n"));
        let json = serde_json::to_value(&report).unwrap();
        assert_eq!(json["checks"][2]["status"], "FAIL");
        assert!(json["checks"][0].get("fix").is_none());
    }
}
