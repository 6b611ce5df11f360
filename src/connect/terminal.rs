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
