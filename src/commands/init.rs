//! `jump init` (and `jump init --destroy`): the plan, the question, the changes.
//!
//! What to create, change or delete is decided in `prereq`; this module is the
//! conversation around it. The flags are checked before any AWS call, and so is the one
//! thing that cannot be fixed later: without a terminal there is nobody to ask, so
//! changes need `--yes` (or `--dry-run` to only look). The plan is printed before
//! anything happens, whether it was asked about or not, so a CI log shows what changed.

use std::io::{IsTerminal, Write};
use std::path::Path;

use serde_json::json;

use crate::aws::Clients;
use crate::cli::{GlobalArgs, InitArgs};
use crate::exit::{Exit, UsageError};
use crate::output::Output;
use crate::plan::CONFIG_FILE;
use crate::prereq::{self, Input, Plan};

pub async fn run(global: GlobalArgs, output: Output, args: InitArgs) -> anyhow::Result<Exit> {
    let input = Input::from_args(&args)?;
    let ask = !args.yes && !args.dry_run;
    if ask && !std::io::stdin().is_terminal() {
        return Err(UsageError("pass --yes to apply (or --dry-run to see the plan)".into()).into());
    }
    let clients = Clients::new(global.profile.as_deref(), global.region.as_deref()).await?;
    let progress = output.progress("looking at what exists");
    let plan = if args.destroy {
        prereq::plan_destroy(&clients, &input).await?
    } else {
        prereq::plan_init(&clients, &input).await?
    };
    progress.finish();

    let mut applied = false;
    if !plan.changes.is_empty() && !args.dry_run {
        // With --json, stdout carries one document at the end; the plan goes to stderr.
        if ask || !output.json() {
            show(output, &plan, output.json());
        }
        if ask && !confirm().await? {
            output.note("Nothing was changed.");
        } else {
            let progress = output.progress("applying the plan");
            prereq::apply(&clients, &plan, &input.name, &progress).await?;
            progress.finish();
            applied = true;
        }
    }

    if output.json() {
        output.print_json(&json!({
            "changes": plan.changes,
            "notes": plan.notes,
            "applied": applied,
            "config": input.config.display().to_string(),
        }));
    } else if plan.changes.is_empty() {
        for line in plan.lines() {
            output.print(&line);
        }
        output.print(if args.destroy {
            "No changes: nothing jump init created is left."
        } else {
            "No changes: everything jump init manages is in place."
        });
    } else if args.dry_run {
        show(output, &plan, false);
        output.print("Dry run: nothing was changed.");
    } else if applied {
        output.print(&format!("Applied {} change(s).", plan.changes.len()));
        if !args.destroy {
            for line in next_steps(&input.config) {
                output.print(&line);
            }
        }
    }
    Ok(Exit::Success)
}

/// The plan's lines and a summary, on stdout, or on stderr when stdout is for JSON.
fn show(output: Output, plan: &Plan, to_stderr: bool) {
    let summary = format!("Plan: {}.", plan.summary());
    for line in plan.lines().iter().chain([&summary]) {
        if to_stderr {
            output.note(line);
        } else {
            output.print(line);
        }
    }
}

/// Asks on the terminal; anything but yes is no.
async fn confirm() -> anyhow::Result<bool> {
    let answer = tokio::task::spawn_blocking(|| {
        let mut stderr = std::io::stderr();
        let _ = write!(stderr, "Apply these changes? [y/N] ");
        let _ = stderr.flush();
        let mut line = String::new();
        std::io::stdin().read_line(&mut line).map(|_| line)
    })
    .await??;
    Ok(matches!(
        answer.trim().to_ascii_lowercase().as_str(),
        "y" | "yes"
    ))
}

/// How to use what was just made; `--config` only when jump would not find the file.
fn next_steps(config: &Path) -> [String; 2] {
    let flag = if config == Path::new(CONFIG_FILE) {
        String::new()
    } else {
        format!(" --config {}", config.display())
    };
    [
        format!(
            "{} points at it. Start a jumphost: jump up{flag} -- true",
            config.display()
        ),
        format!("Check every prerequisite of jump and ECS Exec: jump doctor{flag}"),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn next_steps_name_the_config_only_when_needed() {
        let [up, doctor] = next_steps(Path::new("jump.toml"));
        assert!(up.ends_with("jump up -- true"), "{up}");
        assert!(doctor.ends_with("jump doctor"), "{doctor}");
        let [up, _] = next_steps(Path::new("/etc/jump/jump.toml"));
        assert!(
            up.ends_with("jump up --config /etc/jump/jump.toml -- true"),
            "{up}"
        );
    }
}
