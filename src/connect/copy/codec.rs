//! The bytes of `jump cp` on the exec channel, and the names that travel with them.
//!
//! The channel carries a terminal, so file contents travel as text a terminal passes
//! untouched: base64 where the container has it, otherwise `od`'s hexadecimal (from the
//! task) or `printf`'s octal escapes (to it; `printf` is built into every `sh`). Either
//! way whitespace is not content, so the carriage returns the remote terminal adds to
//! every line, and the line breaks of the tools, are dropped on reading.
//!
//! Names are bytes, as on Unix. Those the task sends are checked before anything is
//! written here: a container is not trusted to name paths outside what was asked for.

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;

/// How a session's file contents are written: what the container has.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Coding {
    /// `base64` (coreutils or busybox), both ways.
    Base64,
    /// `od -An -v -tx1` from the task, `printf` octal escapes to it.
    Plain,
}

impl Coding {
    /// The coding a script's `ready=` field names.
    pub fn named(field: &str) -> Option<Coding> {
        match field {
            "b" => Some(Coding::Base64),
            "o" => Some(Coding::Plain),
            _ => None,
        }
    }

    /// Bytes of file content read per encoded block: whole base64 lines of 57 bytes (76
    /// characters), so no padding appears before the end; octal lines of 512 bytes (2048
    /// characters, well inside a terminal's 4095-character line).
    pub fn block(self) -> usize {
        match self {
            Coding::Base64 => 57 * 1024,
            Coding::Plain => OCTAL_LINE * 64,
        }
    }

    /// One block of content as the receiving script reads it.
    pub fn encode(self, bytes: &[u8]) -> Vec<u8> {
        let mut text = Vec::with_capacity(bytes.len() * 4 + bytes.len() / 32 + 2);
        match self {
            Coding::Base64 => {
                for line in bytes.chunks(57) {
                    text.extend_from_slice(STANDARD.encode(line).as_bytes());
                    text.push(b'\n');
                }
            }
            Coding::Plain => {
                for line in bytes.chunks(OCTAL_LINE) {
                    for byte in line {
                        text.extend_from_slice(format!("\\{byte:03o}").as_bytes());
                    }
                    text.push(b'\n');
                }
            }
        }
        text
    }

    /// What ends a file's content: end of input at the start of a line (the terminal's
    /// Ctrl-D, which ends `base64 -d` and nothing else), or the octal loop's `.` line.
    pub fn end_of_file(self) -> &'static [u8] {
        match self {
            Coding::Base64 => b"\x04",
            Coding::Plain => b".\n",
        }
    }
}

const OCTAL_LINE: usize = 512;

/// Decodes the content the task sends, in whatever pieces it arrives.
#[derive(Debug)]
pub struct Decoder {
    coding: Coding,
    /// Significant characters not yet decoded (less than a base64 quantum or a hex pair).
    carry: Vec<u8>,
}

/// The task sent something that is not the coding it announced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Garbled(pub u8);

impl Decoder {
    pub fn new(coding: Coding) -> Self {
        Decoder {
            coding,
            carry: Vec::new(),
        }
    }

    /// Appends to `out` the bytes `text` completes.
    pub fn feed(&mut self, text: &[u8], out: &mut Vec<u8>) -> Result<(), Garbled> {
        for &c in text {
            if c.is_ascii_whitespace() {
                continue;
            }
            let valid = match self.coding {
                Coding::Base64 => c.is_ascii_alphanumeric() || matches!(c, b'+' | b'/' | b'='),
                Coding::Plain => c.is_ascii_hexdigit(),
            };
            if !valid {
                return Err(Garbled(c));
            }
            self.carry.push(c);
        }
        let quantum = match self.coding {
            Coding::Base64 => 4,
            Coding::Plain => 2,
        };
        let whole = self.carry.len() - self.carry.len() % quantum;
        match self.coding {
            Coding::Base64 => STANDARD
                .decode_vec(&self.carry[..whole], out)
                .map_err(|_| Garbled(b'='))?,
            Coding::Plain => {
                for pair in self.carry[..whole].chunks(2) {
                    let text = std::str::from_utf8(pair).map_err(|_| Garbled(pair[0]))?;
                    out.push(u8::from_str_radix(text, 16).map_err(|_| Garbled(pair[0]))?);
                }
            }
        }
        self.carry.drain(..whole);
        Ok(())
    }

    /// Whether the content ended on a whole quantum, as complete content does.
    pub fn finished(&self) -> bool {
        self.carry.is_empty()
    }
}

/// POSIX `cksum`: the CRC the task's own `cksum` prints, with the length.
#[derive(Clone)]
pub struct Cksum {
    digest: crc::Digest<'static, u32>,
    length: u64,
}

static CKSUM: crc::Crc<u32> = crc::Crc::<u32>::new(&crc::CRC_32_CKSUM);

impl Default for Cksum {
    fn default() -> Self {
        Cksum {
            digest: CKSUM.digest(),
            length: 0,
        }
    }
}

impl Cksum {
    pub fn update(&mut self, bytes: &[u8]) {
        self.digest.update(bytes);
        self.length += bytes.len() as u64;
    }

    /// `CRC LENGTH`, as `cksum < file` prints it.
    pub fn finish(self) -> String {
        let Cksum { mut digest, length } = self;
        // The length goes in too, least significant octet first, as few octets as it needs.
        let mut rest = length;
        while rest > 0 {
            digest.update(&[(rest & 0xff) as u8]);
            rest >>= 8;
        }
        format!("{} {length}", digest.finalize())
    }
}

/// Whether a `cksum` line from the task says the same as ours (busybox pads differently).
pub fn same_cksum(theirs: &str, ours: &str) -> bool {
    theirs
        .split_whitespace()
        .take(2)
        .eq(ours.split_whitespace())
}

/// The task named something other than a path inside the copy's root.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnsafeName(pub String);

/// A name the task sent, relative to the copy's root: empty for the root itself, else
/// `/a/b`, every part a plain name (no `..`, no `.`, nothing empty).
pub fn received_name(name: &[u8]) -> Result<PathBuf, UnsafeName> {
    let unsafe_name = || UnsafeName(String::from_utf8_lossy(name).into_owned());
    if name.is_empty() {
        return Ok(PathBuf::new());
    }
    let Some(rest) = name.strip_prefix(b"/") else {
        return Err(unsafe_name());
    };
    let mut path = PathBuf::new();
    for part in rest.split(|&b| b == b'/') {
        let part = Path::new(OsStr::from_bytes(part));
        match part.components().collect::<Vec<_>>()[..] {
            [Component::Normal(normal)] if normal.as_bytes() == part.as_os_str().as_bytes() => {
                path.push(normal)
            }
            _ => return Err(unsafe_name()),
        }
    }
    Ok(path)
}

/// A name (or path) that cannot travel to the task: the terminal would act on its
/// control characters, and a line longer than it keeps would be cut.
pub fn sendable(name: &[u8]) -> bool {
    name.len() < 3000 && !name.iter().any(|&b| b < 0x20 || b == 0x7f)
}

/// A `file=` field: `x` or `-` (executable or not), the size if the task could count it,
/// and the encoded name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Announced {
    pub executable: bool,
    pub size: Option<u64>,
    pub name: Vec<u8>,
}

/// Reads a `file=` field's value.
pub fn announced(value: &str, coding: Coding) -> Option<Announced> {
    let mut parts = value.splitn(3, ':');
    let executable = match parts.next()? {
        "x" => true,
        "-" => false,
        _ => return None,
    };
    let size = parts.next()?.trim().parse().ok();
    let name = decoded_name(parts.next()?, coding)?;
    Some(Announced {
        executable,
        size,
        name,
    })
}

/// A name the task encoded (`dir=`, `skip=` and `file=` fields).
pub fn decoded_name(text: &str, coding: Coding) -> Option<Vec<u8>> {
    let mut decoder = Decoder::new(coding);
    let mut name = Vec::new();
    decoder.feed(text.as_bytes(), &mut name).ok()?;
    decoder.finished().then_some(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode_in_pieces(coding: Coding, text: &[u8], piece: usize) -> Vec<u8> {
        let mut decoder = Decoder::new(coding);
        let mut out = Vec::new();
        for chunk in text.chunks(piece) {
            decoder.feed(chunk, &mut out).unwrap();
        }
        assert!(decoder.finished());
        out
    }

    #[test]
    fn base64_lines_survive_a_terminal_and_any_cut() {
        let data: Vec<u8> = (0..=255u8).cycle().take(1000).collect();
        // What a remote terminal makes of base64's lines: CR LF at every end.
        let text = String::from_utf8(Coding::Base64.encode(&data))
            .unwrap()
            .replace('\n', "\r\n");
        assert!(text.lines().all(|l| l.trim_end().len() <= 76));
        for piece in [1, 3, 7, 76, 1000] {
            assert_eq!(
                decode_in_pieces(Coding::Base64, text.as_bytes(), piece),
                data
            );
        }
    }

    #[test]
    fn od_hex_is_read_and_octal_escapes_cover_every_byte() {
        let od = b" 00 ff 0a 1b\r\n 7f\r\n";
        assert_eq!(
            decode_in_pieces(Coding::Plain, od, 2),
            [0x00, 0xff, 0x0a, 0x1b, 0x7f]
        );
        let sent = Coding::Plain.encode(&[0, 7, 0o377, b'%', b'\\']);
        assert_eq!(sent, b"\\000\\007\\377\\045\\134\n");
        let long = Coding::Plain.encode(&[b'a'; 1025]);
        assert_eq!(
            long.split(|&b| b == b'\n')
                .map(<[u8]>::len)
                .collect::<Vec<_>>(),
            [2048, 2048, 4, 0]
        );
    }

    #[test]
    fn content_that_is_not_the_announced_coding_is_refused() {
        let mut out = Vec::new();
        assert_eq!(
            Decoder::new(Coding::Base64).feed(b"QUJD\x1b[2J", &mut out),
            Err(Garbled(0x1b))
        );
        assert_eq!(
            Decoder::new(Coding::Plain).feed(b"4g", &mut out),
            Err(Garbled(b'g'))
        );
        let mut cut = Decoder::new(Coding::Base64);
        cut.feed(b"QUJ", &mut out).unwrap();
        assert!(!cut.finished());
    }

    #[test]
    fn cksum_matches_posix_cksum() {
        // `printf … | cksum` on Linux (coreutils).
        for (input, expected) in [
            (&b""[..], "4294967295 0"),
            (b"a", "1220704766 1"),
            (b"123456789", "930766865 9"),
            (&[0u8; 100_000], "1260869142 100000"),
        ] {
            let mut sum = Cksum::default();
            for piece in input.chunks(333) {
                sum.update(piece);
            }
            assert_eq!(sum.finish(), expected);
        }
        assert!(same_cksum("930766865 9\n", "930766865 9"));
        assert!(!same_cksum("930766865 8", "930766865 9"));
        assert!(!same_cksum("", "930766865 9"));
    }

    #[test]
    fn the_task_may_name_only_paths_inside_the_copy() {
        assert_eq!(received_name(b"").unwrap(), PathBuf::new());
        assert_eq!(
            received_name(b"/a/b c/.hidden").unwrap(),
            PathBuf::from("a/b c/.hidden")
        );
        for bad in [
            &b"a"[..],
            b"/..",
            b"/a/../../etc",
            b"/a//b",
            b"/.",
            b"//etc/passwd",
            b"/a/",
        ] {
            assert!(
                received_name(bad).is_err(),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
    }

    #[test]
    fn names_with_control_characters_cannot_be_sent() {
        assert!(sendable("dir/naïve file's.txt".as_bytes()));
        assert!(!sendable(b"a\nb"));
        assert!(!sendable(b"a\x03"));
        assert!(!sendable(b"\x7f"));
        assert!(!sendable(&[b'a'; 3000]));
    }

    #[test]
    fn file_announcements_are_read() {
        let name = STANDARD.encode("/d/f");
        assert_eq!(
            announced(&format!("x: 12:{name}"), Coding::Base64),
            Some(Announced {
                executable: true,
                size: Some(12),
                name: b"/d/f".to_vec()
            })
        );
        assert_eq!(
            announced("-::2f 61\r\n", Coding::Plain),
            Some(Announced {
                executable: false,
                size: None,
                name: b"/a".to_vec()
            })
        );
        assert_eq!(announced("?:1:", Coding::Base64), None);
    }
}
