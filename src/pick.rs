//! Choosing a target from a list when the command line names none: sessions for `ssh`,
//! `exec`, `logs` and `down`, services for `run --service` and `exec --service`.
//!
//! On a terminal the user gets a fuzzy-searchable list (dialoguer's `FuzzySelect`, drawn
//! on stderr so stdout stays the command's own). Anywhere else (a pipe, CI, `--json`)
//! nothing can be asked: the call fails with exit 2 and lists the candidates, so a script
//! learns what it could have named.

use std::io::IsTerminal;

use dialoguer::theme::ColorfulTheme;
use dialoguer::FuzzySelect;

use crate::exit::UsageError;
use crate::output::Output;

/// One thing that can be chosen: what the command uses, and how the list shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate {
    pub value: String,
    pub label: String,
}

/// What a command is choosing, for the prompt and the messages.
pub struct Choosing<'a> {
    /// `session`, `service`.
    pub what: &'a str,
    /// How to name one on the command line instead (`jump down SESSION`).
    pub instead: &'a str,
}

/// The chosen candidate's value: asked on a terminal, else an error listing them all.
pub fn one(
    choosing: &Choosing<'_>,
    candidates: &[Candidate],
    output: Output,
) -> anyhow::Result<String> {
    let what = choosing.what;
    if candidates.is_empty() {
        return Err(UsageError(format!(
            "there is no {what} to choose from (name one: {})",
            choosing.instead
        ))
        .into());
    }
    let interactive =
        !output.json() && std::io::stdin().is_terminal() && std::io::stderr().is_terminal();
    if !interactive {
        let listing: Vec<String> = candidates
            .iter()
            .map(|c| format!("  {}", c.label))
            .collect();
        return Err(UsageError(format!(
            "name the {what} ({}); without a terminal jump cannot ask. Candidates:\n{}",
            choosing.instead,
            listing.join("\n")
        ))
        .into());
    }
    let labels: Vec<&str> = candidates.iter().map(|c| c.label.as_str()).collect();
    let chosen = FuzzySelect::with_theme(&ColorfulTheme::default())
        .with_prompt(format!(
            "{what} (type to filter, Enter to choose, Esc to give up)"
        ))
        .items(&labels)
        .default(0)
        .interact_opt()?;
    match chosen {
        Some(index) => Ok(candidates[index].value.clone()),
        None => Err(UsageError(format!("no {what} chosen")).into()),
    }
}
