//! The local terminal during a session: its size, raw mode for our own client, and its
//! settings put back on every way out, whichever program changed them.

use anyhow::Context as _;

pub(crate) fn terminal_size() -> Option<(u16, u16)> {
    // SAFETY: TIOCGWINSZ fills a winsize struct we own; fd 1 is our stdout.
    let mut size: libc::winsize = unsafe { std::mem::zeroed() };
    let ok = unsafe { libc::ioctl(libc::STDOUT_FILENO, libc::TIOCGWINSZ, &mut size) } == 0;
    (ok && size.ws_col > 0).then_some((size.ws_col, size.ws_row))
}

/// The local terminal in raw mode for as long as this lives.
pub(crate) struct RawTerminal {
    /// Put back when the session ends, by dropping it.
    _restore: SavedTerminal,
}

impl RawTerminal {
    pub(crate) fn enter() -> anyhow::Result<Self> {
        let saved = SavedTerminal::save()?;
        let mut raw = saved.saved;
        // SAFETY: cfmakeraw/tcsetattr on stdin with a termios struct we own.
        unsafe {
            libc::cfmakeraw(&mut raw);
            if libc::tcsetattr(libc::STDIN_FILENO, libc::TCSANOW, &raw) != 0 {
                return Err(std::io::Error::last_os_error()).context("cannot set raw mode");
            }
        }
        Ok(RawTerminal { _restore: saved })
    }
}

/// The local terminal's settings, put back when this is dropped: whatever a child that
/// owned the terminal (the official plugin) left behind, even if it was killed.
pub(crate) struct SavedTerminal {
    saved: libc::termios,
}

impl SavedTerminal {
    pub(crate) fn save() -> anyhow::Result<Self> {
        // SAFETY: tcgetattr on stdin into a termios struct we own.
        unsafe {
            let mut saved: libc::termios = std::mem::zeroed();
            if libc::tcgetattr(libc::STDIN_FILENO, &mut saved) != 0 {
                return Err(std::io::Error::last_os_error())
                    .context("cannot read terminal settings");
            }
            Ok(SavedTerminal { saved })
        }
    }
}

impl Drop for SavedTerminal {
    fn drop(&mut self) {
        // SAFETY: restores the settings saved in `enter`.
        unsafe {
            libc::tcsetattr(libc::STDIN_FILENO, libc::TCSANOW, &self.saved);
        }
    }
}

/// The escape character of interactive sessions (`~` unless `--escape` says otherwise),
/// or none. Chosen as ssh's is, so it reads the same.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Escape(pub Option<u8>);

impl Escape {
    /// The sequence that ends a session, as the user types it.
    pub fn ending(&self) -> String {
        match self.0 {
            Some(c) => format!("{}.", char::from(c)),
            None => "no escape".to_string(),
        }
    }
}

impl Default for Escape {
    fn default() -> Self {
        Escape(Some(b'~'))
    }
}

impl std::str::FromStr for Escape {
    type Err = String;

    fn from_str(text: &str) -> Result<Escape, String> {
        match text.as_bytes() {
            b"none" => Ok(Escape(None)),
            [byte] if byte.is_ascii_graphic() => Ok(Escape(Some(*byte))),
            _ => Err(format!(
                "`{text}` is not an escape character: give one printable character, or `none`"
            )),
        }
    }
}

/// What the user typed, once escapes are taken out.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Typed {
    /// For the remote side.
    pub send: Vec<u8>,
    /// `ESC ?`: list the escapes.
    pub help: bool,
    /// `ESC .`: end the session here.
    pub end: bool,
}

/// Finds ssh-style escapes in typed input: at the start of a line, the escape character
/// then `.` ends the session and `?` lists the escapes; typed twice it is sent once, and
/// before anything else it is sent with what follows.
#[derive(Debug)]
pub struct Escapes {
    escape: Option<u8>,
    line_start: bool,
    pending: bool,
}

impl Escapes {
    pub fn new(escape: Escape) -> Escapes {
        Escapes {
            escape: escape.0,
            line_start: true,
            pending: false,
        }
    }

    pub fn feed(&mut self, bytes: &[u8]) -> Typed {
        let mut typed = Typed::default();
        let Some(escape) = self.escape else {
            typed.send = bytes.to_vec();
            return typed;
        };
        for &byte in bytes {
            if self.pending {
                self.pending = false;
                match byte {
                    b'.' => {
                        typed.end = true;
                        return typed;
                    }
                    b'?' => {
                        typed.help = true;
                        continue;
                    }
                    _ if byte == escape => {
                        typed.send.push(escape);
                        self.line_start = false;
                        continue;
                    }
                    _ => typed.send.push(escape),
                }
            } else if self.line_start && byte == escape {
                self.pending = true;
                continue;
            }
            typed.send.push(byte);
            self.line_start = matches!(byte, b'\r' | b'\n');
        }
        typed
    }

    /// The escapes, as `ESC ?` lists them (raw-mode line ends).
    pub fn help(&self) -> String {
        let c = char::from(self.escape.unwrap_or(b'~'));
        format!(
            "\r\nSupported escape sequences (at the start of a line):\r\n {c}.  end the session \
             (the task is stopped as usual)\r\n {c}?  this list\r\n {c}{c}  send the escape \
             character itself\r\n"
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn typed(escapes: &mut Escapes, text: &str) -> Typed {
        escapes.feed(text.as_bytes())
    }

    #[test]
    fn escapes_act_only_at_the_start_of_a_line() {
        let mut escapes = Escapes::new(Escape::default());
        assert_eq!(typed(&mut escapes, "ls ~.\r").send, b"ls ~.\r");
        let ended = typed(&mut escapes, "~.");
        assert!(ended.end && ended.send.is_empty());

        let mut escapes = Escapes::new(Escape::default());
        let help = typed(&mut escapes, "~?");
        assert!(help.help && !help.end && help.send.is_empty());
        assert_eq!(typed(&mut escapes, "~~x").send, b"~x");
        assert_eq!(typed(&mut escapes, "\r~a").send, b"\r~a");
    }

    #[test]
    fn an_escape_split_across_reads_still_counts() {
        let mut escapes = Escapes::new(Escape::default());
        assert_eq!(typed(&mut escapes, "echo hi\r~").send, b"echo hi\r");
        assert!(typed(&mut escapes, ".").end);
    }

    #[test]
    fn another_character_or_none() {
        let mut percent = Escapes::new("%".parse().unwrap());
        assert_eq!(typed(&mut percent, "~.").send, b"~.");
        assert!(typed(&mut percent, "\r%.").end);
        let mut none = Escapes::new("none".parse().unwrap());
        assert_eq!(typed(&mut none, "~.").send, b"~.");
        for bad in ["", "ab", " ", "\u{7f}"] {
            assert!(bad.parse::<Escape>().is_err(), "{bad:?}");
        }
    }
}
