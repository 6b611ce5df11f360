//! The exit-status wrapper: how a remote command reports its status, and how local input
//! reaches it, whichever client carries the session (ours or the official plugin).
//!
//! The platform does not reliably report a remote command's exit status, so we
//! obtain it ourselves: the command runs under a tiny `sh` wrapper that, when it
//! finishes, prints an OSC escape sequence carrying a per-session random nonce and
//! the status (`ESC ] jump;<nonce>;exit=<n> BEL`). The stream scanner below removes
//! such sequences from the output (a terminal would ignore them anyway) and keeps
//! what they say. Without a local terminal the wrapper first puts the remote pty in
//! raw mode and says `ready=1`; local input is held until then and travels in
//! length-prefixed frames, so piped input is never echoed back or interpreted, and
//! output bytes arrive as the command wrote them.

use std::io::Write;

use ssh_key::rand_core::{OsRng, RngCore};
use tokio::io::AsyncReadExt;

use crate::connect::ssh::{remote_command, shell_quote};
use crate::connect::target::ExecError;
use crate::connect::terminal::Escapes;

/// A fresh nonce for one session's wrapper: output cannot forge the status without it.
pub fn nonce() -> String {
    format!("{:016x}", OsRng.next_u64())
}

/// The command the agent runs: the user's words under the status-reporting wrapper.
pub fn wrapped_command(nonce: &str, words: &[String], local_terminal: bool) -> String {
    let mark = |field: &str| format!("printf '\\033]jump;{nonce};{field}\\007'");
    let run = if local_terminal {
        "\"$@\"; s=$?".to_string()
    } else {
        // The pty goes raw, so no byte is interpreted; input arrives in frames of
        // `LENGTH\n` and that many bytes, ended by `0\n`, and reaches the command
        // through a pipe, whose end is its end of input.
        format!(
            "if stty raw -echo -iexten 2>/dev/null && head -c 0 </dev/null >/dev/null 2>&1; \
             then {ready}; \
             while IFS= read -r n && [ \"$n\" -gt 0 ]; do head -c \"$n\" || break; done | \"$@\"; s=$?; \
             else {unfit}; s=125; fi",
            ready = mark("ready=1"),
            unfit = mark("unfit=1"),
        )
    };
    let script = format!("{run}; printf '\\033]jump;{nonce};exit=%d\\007' \"$s\"; exit \"$s\"");
    let default_shell = [
        "sh".to_string(),
        "-c".to_string(),
        "if command -v bash >/dev/null 2>&1; then bash; else sh; fi".to_string(),
    ];
    let words = if words.is_empty() {
        &default_shell[..]
    } else {
        words
    };
    format!(
        "sh -c {} jump-exec {}",
        shell_quote(&script),
        remote_command(words)
    )
}

/// What a stream of remote output holds: bytes as the command wrote them, and the
/// fields of the sequences marked with this session's nonce, in the order they came.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Piece {
    Bytes(Vec<u8>),
    Mark(String),
}

/// Splits a stream of output chunks into [`Piece`]s, however the chunks are cut.
#[derive(Debug)]
pub struct MarkScanner {
    marker: Vec<u8>,
    pending: Vec<u8>,
}

impl MarkScanner {
    pub fn new(nonce: &str) -> Self {
        MarkScanner {
            marker: format!("\x1b]jump;{nonce};").into_bytes(),
            pending: Vec::new(),
        }
    }

    /// Takes a chunk of output; appends to `pieces` what is complete now. Only a tail
    /// that could still become a mark is held back.
    pub fn feed(&mut self, chunk: &[u8], pieces: &mut Vec<Piece>) {
        self.pending.extend_from_slice(chunk);
        let emit = |pieces: &mut Vec<Piece>, bytes: &[u8]| {
            if !bytes.is_empty() {
                pieces.push(Piece::Bytes(bytes.to_vec()));
            }
        };
        loop {
            match find(&self.pending, &self.marker) {
                Some(at) => {
                    let rest = at + self.marker.len();
                    let Some(end) = self.pending[rest..].iter().position(|&b| b == 0x07) else {
                        emit(pieces, &self.pending[..at]);
                        self.pending.drain(..at);
                        return;
                    };
                    emit(pieces, &self.pending[..at]);
                    let field = String::from_utf8_lossy(&self.pending[rest..rest + end]);
                    pieces.push(Piece::Mark(field.into_owned()));
                    self.pending.drain(..rest + end + 1);
                }
                None => {
                    let keep = partial_suffix(&self.pending, &self.marker);
                    let cut = self.pending.len() - keep;
                    emit(pieces, &self.pending[..cut]);
                    self.pending.drain(..cut);
                    return;
                }
            }
        }
    }

    /// What is left at the end of the stream.
    pub fn finish(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.pending)
    }
}

/// Finds and removes the wrapper's sequences from a stream of output chunks.
#[derive(Debug)]
pub struct StatusScanner {
    marks: MarkScanner,
    status: Option<i32>,
    ready: bool,
    unfit: bool,
}

impl StatusScanner {
    pub fn new(nonce: &str) -> Self {
        StatusScanner {
            marks: MarkScanner::new(nonce),
            status: None,
            ready: false,
            unfit: false,
        }
    }

    /// The command's exit status, once the wrapper has reported it.
    pub fn status(&self) -> Option<i32> {
        self.status
    }

    /// Whether the wrapper has set up the remote terminal (non-terminal sessions).
    pub fn ready(&self) -> bool {
        self.ready
    }

    /// Whether the wrapper found the container unable to carry piped input exactly.
    pub fn unfit(&self) -> bool {
        self.unfit
    }

    /// Takes a chunk of output; returns what is safe to show now.
    pub fn feed(&mut self, chunk: &[u8]) -> Vec<u8> {
        let mut pieces = Vec::new();
        self.marks.feed(chunk, &mut pieces);
        let mut shown = Vec::new();
        for piece in pieces {
            match piece {
                Piece::Bytes(bytes) => shown.extend_from_slice(&bytes),
                Piece::Mark(field) => match field.split_once('=') {
                    Some(("exit", code)) => self.status = code.trim().parse().ok(),
                    Some(("ready", _)) => self.ready = true,
                    Some(("unfit", _)) => self.unfit = true,
                    _ => {}
                },
            }
        }
        shown
    }

    /// What is left at the end of the stream.
    pub fn finish(&mut self) -> Vec<u8> {
        self.marks.finish()
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// The length of the longest suffix of `data` that is a proper prefix of `marker`.
fn partial_suffix(data: &[u8], marker: &[u8]) -> usize {
    (1..marker.len().min(data.len() + 1))
        .rev()
        .find(|&n| data.ends_with(&marker[..n]))
        .unwrap_or(0)
}

/// Remote output on our stdout, minus the wrapper's sequences, which it acts on.
pub(crate) struct Screen {
    scanner: StatusScanner,
    ready: Option<tokio::sync::oneshot::Sender<()>>,
    stdout: std::io::Stdout,
}

impl Screen {
    pub(crate) fn new(nonce: &str, ready: Option<tokio::sync::oneshot::Sender<()>>) -> Self {
        Screen {
            scanner: StatusScanner::new(nonce),
            ready,
            stdout: std::io::stdout(),
        }
    }

    pub(crate) fn show(&mut self, bytes: &[u8]) {
        let shown = self.scanner.feed(bytes);
        let _ = self.stdout.write_all(&shown);
        let _ = self.stdout.flush();
        if self.scanner.ready() {
            if let Some(ready) = self.ready.take() {
                let _ = ready.send(());
            }
        }
    }

    /// Shows what was held back and gives the status the wrapper reported, if it did.
    pub(crate) fn finish(mut self) -> Result<Option<i32>, ExecError> {
        let _ = self.stdout.write_all(&self.scanner.finish());
        let _ = self.stdout.flush();
        if self.scanner.unfit() {
            return Err(ExecError::InputUnfit);
        }
        Ok(self.scanner.status())
    }
}

/// Where local input goes: our data channel, or the plugin's stdin.
pub(crate) trait InputSink {
    /// False once the other side is gone.
    async fn put(&mut self, bytes: &[u8]) -> bool;
}

/// How the input pump ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum InputEnd {
    /// End of local input, or the other side went away.
    Done,
    /// The user typed the escape to end the session.
    Escaped,
}

/// Local input to the remote pty, once it is set up. On a terminal, `escapes` takes out
/// what the user asks of jump itself; without one, input travels in the wrapper's frames
/// (see [`frame_input`]), and end of input is the empty frame.
pub(crate) async fn pump_input(
    mut sink: impl InputSink,
    escapes: Option<Escapes>,
    ready: tokio::sync::oneshot::Receiver<()>,
) -> InputEnd {
    if ready.await.is_err() {
        return InputEnd::Done;
    }
    let terminal = escapes.is_some();
    let mut escapes = escapes;
    let mut stdin = tokio::io::stdin();
    let mut buffer = vec![0u8; 16 * 1024];
    loop {
        let n = match stdin.read(&mut buffer).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        let sent = match escapes.as_mut() {
            Some(escapes) => {
                let typed = escapes.feed(&buffer[..n]);
                if typed.help {
                    let mut stderr = std::io::stderr();
                    let _ = stderr.write_all(escapes.help().as_bytes());
                    let _ = stderr.flush();
                }
                let sent = typed.send.is_empty() || sink.put(&typed.send).await;
                if typed.end {
                    return InputEnd::Escaped;
                }
                sent
            }
            None => sink.put(&frame_input(&buffer[..n])).await,
        };
        if !sent {
            return InputEnd::Done;
        }
    }
    if !terminal {
        sink.put(&frame_input(&[])).await;
    }
    InputEnd::Done
}

/// One frame of piped input as the wrapper reads it: the length in decimal, a newline,
/// then the bytes; the empty frame (`0\n`) is the end of input.
pub(crate) fn frame_input(bytes: &[u8]) -> Vec<u8> {
    let mut frame = format!("{}\n", bytes.len()).into_bytes();
    frame.extend_from_slice(bytes);
    frame
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scan_in_pieces(stream: &[u8], piece: usize, nonce: &str) -> (Vec<u8>, Option<i32>) {
        let mut scanner = StatusScanner::new(nonce);
        let mut shown = Vec::new();
        for chunk in stream.chunks(piece) {
            shown.extend(scanner.feed(chunk));
        }
        shown.extend(scanner.finish());
        (shown, scanner.status())
    }

    #[test]
    fn the_status_is_found_and_removed_however_the_stream_is_cut() {
        let stream = b"\x1b]jump;abc123;ready=1\x07hello\r\nworld\x1b]jump;abc123;exit=42\x07";
        for piece in 1..=stream.len() {
            let (shown, status) = scan_in_pieces(stream, piece, "abc123");
            assert_eq!(shown, b"hello\r\nworld", "piece size {piece}");
            assert_eq!(status, Some(42), "piece size {piece}");
            let ready_len = b"\x1b]jump;abc123;ready=1\x07".len();
            let mut scanner = StatusScanner::new("abc123");
            scanner.feed(&stream[..piece.min(ready_len)]);
            assert_eq!(scanner.ready(), piece >= ready_len, "piece size {piece}");
        }
    }

    #[test]
    fn other_escape_sequences_and_other_nonces_pass_through() {
        let stream = b"\x1b]0;title\x07ok \x1b]jump;other;exit=1\x07\x1b]jump;mine;exit=0\x07";
        let (shown, status) = scan_in_pieces(stream, 3, "mine");
        assert_eq!(shown, b"\x1b]0;title\x07ok \x1b]jump;other;exit=1\x07");
        assert_eq!(status, Some(0));
    }

    #[test]
    fn without_the_sequence_everything_is_shown_and_no_status() {
        let (shown, status) = scan_in_pieces(b"plain output \x1b]jum", 4, "n");
        assert_eq!(shown, b"plain output \x1b]jum");
        assert_eq!(status, None);
    }

    #[test]
    fn wrapped_command_quotes_every_word_and_reports_status() {
        let words = vec!["printf".to_string(), "%s\n".to_string(), "it's".to_string()];
        let command = wrapped_command("n0nce", &words, false);
        assert!(command.starts_with("sh -c 'if stty raw -echo -iexten 2>/dev/null && head -c 0"));
        assert!(command.contains("jump;n0nce;exit=%d"));
        assert!(command.contains("jump;n0nce;ready=1"));
        assert!(command.contains("jump;n0nce;unfit=1"));
        assert!(command.ends_with(
            r#"jump-exec printf '%s
' 'it'\''s'"#
        ));
        let interactive = wrapped_command("n", &[], true);
        assert!(!interactive.contains("stty"));
        assert!(interactive.contains("command -v bash"));
    }

    #[test]
    fn piped_input_is_framed_by_length_and_ends_with_an_empty_frame() {
        assert_eq!(frame_input(b"\x04\n\x03"), b"3\n\x04\n\x03");
        assert_eq!(frame_input(&[]), b"0\n");
    }

    #[test]
    fn a_container_unfit_for_piped_input_is_named() {
        let mut scanner = StatusScanner::new("n");
        assert!(scanner
            .feed(b"\x1b]jump;n;unfit=1\x07\x1b]jump;n;exit=125\x07")
            .is_empty());
        assert!(scanner.unfit());
    }
}
