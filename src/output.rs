//! Human text or JSON, and progress only where someone is watching.
//!
//! Results go to stdout (text, or JSON with `--json`); progress, notes and errors go to
//! stderr. The spinner is drawn only when stderr is a terminal; otherwise each stage is
//! one plain line, which reads well in CI logs. Colour follows `NO_COLOR`.
//!
//! Every line goes out with its control characters escaped (tab and newline excepted):
//! results, notes and errors carry text other people wrote (log lines any holder of
//! `logs:PutLogEvents` can add, tags, a task's stopped reason, AWS error messages), and a
//! terminal obeys the escape sequences in it (retitle the window, hide or rewrite lines,
//! and worse on some terminals). A remote session's own output is not written here.
//!
//! Every write ignores I/O errors: after SIGHUP the terminal is gone and a panicking
//! `eprintln!` would skip teardown; a closed stdout pipe (`jump ls | head`) is not an
//! error either.

use std::borrow::Cow;
use std::io::{IsTerminal, Write};
use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};

/// Output settings for one run.
#[derive(Debug, Clone, Copy)]
pub struct Output {
    json: bool,
    color: bool,
    interactive: bool,
}

impl Output {
    pub fn new(json: bool) -> Self {
        Output {
            json,
            color: color_enabled(),
            interactive: std::io::stderr().is_terminal(),
        }
    }

    pub fn json(&self) -> bool {
        self.json
    }

    /// A progress indicator for a multi-stage wait.
    pub fn progress(&self, first: &str) -> Progress {
        let bar = self.interactive.then(|| {
            let bar = ProgressBar::new_spinner();
            if let Ok(style) = ProgressStyle::with_template("{spinner} {msg} ({elapsed})") {
                bar.set_style(style);
            }
            bar.enable_steady_tick(Duration::from_millis(100));
            bar
        });
        let progress = Progress { bar };
        progress.stage(first);
        progress
    }

    /// A bar counting bytes on a terminal (none with `--json` or without one); a total
    /// of 0 is unknown yet, and grows as the sizes become known.
    pub fn transfer(&self, total: u64) -> Option<ProgressBar> {
        if self.json || !self.interactive {
            return None;
        }
        let bar = ProgressBar::new(total);
        if let Ok(style) = ProgressStyle::with_template(
            "{bar:30} {bytes}/{total_bytes} {binary_bytes_per_sec} ({elapsed}, {eta} left)",
        ) {
            bar.set_style(style);
        }
        bar.enable_steady_tick(Duration::from_millis(200));
        Some(bar)
    }

    /// A line of information for people, on stderr.
    pub fn note(&self, message: &str) {
        let _ = writeln!(std::io::stderr(), "{}", escape_controls(message));
    }

    /// The final error message, on stderr (as a JSON object with `--json`).
    pub fn error(&self, err: &anyhow::Error, code: u8) {
        let mut stderr = std::io::stderr();
        let full = format!("{err:#}");
        let message = escape_controls(&full);
        if self.json {
            let value = serde_json::json!({ "error": message, "exit_code": code });
            let _ = writeln!(stderr, "{value}");
        } else if self.color {
            let _ = writeln!(stderr, "\x1b[1;31merror:\x1b[0m {message}");
        } else {
            let _ = writeln!(stderr, "error: {message}");
        }
    }

    /// A result line on stdout.
    pub fn print(&self, text: &str) {
        let _ = self.deliver(text);
    }

    /// [`Output::print`] for what must not be lost: whether it reached stdout.
    pub fn deliver(&self, text: &str) -> std::io::Result<()> {
        let mut stdout = std::io::stdout();
        writeln!(stdout, "{}", escape_controls(text))?;
        stdout.flush()
    }

    /// A result as pretty JSON on stdout.
    pub fn print_json(&self, value: &serde_json::Value) {
        self.print(&pretty(value));
    }

    /// [`Output::print_json`] for what must not be lost.
    pub fn deliver_json(&self, value: &serde_json::Value) -> std::io::Result<()> {
        self.deliver(&pretty(value))
    }
}

fn pretty(value: &serde_json::Value) -> String {
    serde_json::to_string_pretty(value).unwrap_or_else(|_| value.to_string())
}

/// Colour on stderr: only on a terminal, and never when `NO_COLOR` is set (non-empty).
pub fn color_enabled() -> bool {
    let no_color = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
    std::io::stderr().is_terminal() && !no_color
}

/// A spinner on a terminal, plain stage lines elsewhere.
pub struct Progress {
    bar: Option<ProgressBar>,
}

impl Progress {
    pub fn stage(&self, message: &str) {
        match &self.bar {
            Some(bar) => bar.set_message(message.to_string()),
            None => {
                let _ = writeln!(std::io::stderr(), "jump: {message}");
            }
        }
    }

    pub fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        self.finish();
    }
}

/// A duration for tables: the largest unit or two, like `1h 5m` or `42s`.
pub fn short_duration(duration: Duration) -> String {
    let secs = duration.as_secs();
    let (h, m, s) = (secs / 3600, secs / 60 % 60, secs % 60);
    match (h, m) {
        (0, 0) => format!("{s}s"),
        (0, _) if s == 0 => format!("{m}m"),
        (0, _) => format!("{m}m {s}s"),
        _ if m == 0 => format!("{h}h"),
        _ => format!("{h}h {m}m"),
    }
}

/// Left-aligned columns separated by two spaces.
pub fn table(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for row in rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let line = |cells: Vec<&str>| {
        cells
            .iter()
            .zip(&widths)
            .map(|(cell, width)| format!("{cell:<width$}"))
            .collect::<Vec<_>>()
            .join("  ")
            .trim_end()
            .to_string()
    };
    let mut out = vec![line(header.to_vec())];
    out.extend(
        rows.iter()
            .map(|row| line(row.iter().map(String::as_str).collect())),
    );
    out.join("\n")
}

/// TEXT with every control character but tab and newline written as an escape (`\x1b`,
/// `\u{9b}`), so that it shows instead of acting on the terminal.
pub fn escape_controls(text: &str) -> Cow<'_, str> {
    let acts = |c: char| c.is_control() && c != '\n' && c != '\t';
    if !text.chars().any(acts) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        match c {
            c if !acts(c) => out.push(c),
            c if (c as u32) < 0x80 => out.push_str(&format!("\\x{:02x}", c as u32)),
            c => out.push_str(&format!("\\u{{{:x}}}", c as u32)),
        }
    }
    Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_are_shown_not_obeyed() {
        assert_eq!(escape_controls("plain\tline\n"), "plain\tline\n");
        assert_eq!(
            escape_controls("\x1b]0;pwned\x07 \r\x7f"),
            "\\x1b]0;pwned\\x07 \\x0d\\x7f"
        );
        assert_eq!(escape_controls("csi\u{9b}31m"), "csi\\u{9b}31m");
        assert_eq!(escape_controls("ünïcode ✓"), "ünïcode ✓");
    }

    #[test]
    fn short_durations() {
        assert_eq!(short_duration(Duration::from_secs(42)), "42s");
        assert_eq!(short_duration(Duration::from_secs(120)), "2m");
        assert_eq!(short_duration(Duration::from_secs(125)), "2m 5s");
        assert_eq!(short_duration(Duration::from_secs(3600)), "1h");
        assert_eq!(short_duration(Duration::from_secs(3900)), "1h 5m");
    }

    #[test]
    fn tables_align() {
        let text = table(
            &["A", "LONGER"],
            &[vec!["xyz".into(), "1".into()], vec!["p".into(), "".into()]],
        );
        assert_eq!(text, "A    LONGER\nxyz  1\np");
    }
}
