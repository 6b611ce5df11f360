//! The two `sh` scripts `jump cp` runs in the task, one per direction.
//!
//! They use only what every `sh` has built in, plus `base64` (or `od` when sending and
//! it is missing), `mkdir` for directories, and, where the container has them, `stty`
//! (so our input is not echoed back), `wc` (sizes for the progress bar), `chmod` (the
//! executable bit) and `cksum` (each file is checked against what was sent). They talk
//! to jump in the wrapper's marks (`ESC ] jump;NONCE;FIELD BEL`, see `wrapper`), which
//! nothing else in the output can forge without the nonce.
//!
//! Receiving, the script reads one line per step from the terminal: `d NAME` makes a
//! directory, `f NAME` or `x NAME` (executable) a file whose content follows, `q` ends.
//! Names are relative to the copy's root (`""` is the root, `/a/b` below it). Sending,
//! it walks the source itself and says `dir=`, `file=` (then the content, then `end=`
//! with the file's `cksum`), `skip=` for what it cannot send (devices, links to directories, unreadable files).
//! Each step received is acknowledged (`made`, `wrote=`), so a failure names its file.

use crate::connect::ssh::{remote_command, shell_quote};

/// Receives into `$2` (or into `$2/$3` when `$2` is a directory); `$4` is `f` or `d`,
/// what is coming.
const RECEIVE: &str = r#"N=$1 D=$2 B=$3 K=$4
M(){ printf '\033]jump;%s;%s\007' "$N" "$1"; }
stty -echo 2>/dev/null
if command -v base64 >/dev/null 2>&1; then E=b; else E=o; fi
if command -v cksum >/dev/null 2>&1; then C=1; else C=; fi
if [ -d "$D" ]; then T=$D/$B; else T=$D; fi
if [ "$K" = d ] && [ -e "$T" ] && [ ! -d "$T" ]; then M notdir; exit 0; fi
M "ready=$E"
while IFS= read -r o; do
p=$T${o#??}
case $o in
d*) mkdir -p -- "$p" 2>/dev/null && M made || { M fail; exit 0; } ;;
[fx]*) if ! true 2>/dev/null >"$p"; then M fail; exit 0; fi
if [ $E = b ]; then base64 -d >"$p" || { M fail; exit 0; }
else while IFS= read -r l && [ "$l" != . ]; do printf "$l"; done >"$p"; fi
case $o in x*) chmod +x -- "$p" 2>/dev/null;; esac
if [ -n "$C" ]; then M "wrote=$(cksum <"$p")"; else M wrote=; fi ;;
q*) break ;;
esac
done
M done"#;

/// Sends `$2`; `$3` is `r` to send a directory's tree.
const SEND: &str = r#"N=$1 S=$2
M(){ printf '\033]jump;%s;%s\007' "$N" "$1"; }
stty -echo -opost 2>/dev/null
if command -v base64 >/dev/null 2>&1; then e(){ base64; }; E=b
elif command -v od >/dev/null 2>&1; then e(){ od -An -v -tx1; }; E=o
else M need; exit 0; fi
n(){ printf %s "$1" | e; }
s(){ [ -r "$1" ] || { M "skip=$(n "$2")"; return; }
x=-; [ -x "$1" ] && x=x
M "file=$x:$(wc -c <"$1" 2>/dev/null):$(n "$2")"; e <"$1"; M "end=$(cksum <"$1" 2>/dev/null)"; }
w(){ M "dir=$(n "$2")"
for f in "$1"/* "$1"/.[!.]* "$1"/..?*; do
[ -e "$f" ] || [ -L "$f" ] || continue
if [ -L "$f" ] && [ -d "$f" ]; then M "skip=$(n "$2/${f##*/}")"
elif [ -d "$f" ]; then w "$f" "$2/${f##*/}"
elif [ -f "$f" ]; then s "$f" "$2/${f##*/}"
else M "skip=$(n "$2/${f##*/}")"; fi
done; }
M "ready=$E"
if [ -d "$S" ]; then if [ "$3" = r ]; then w "$S" ""; else M isdir; fi
elif [ -f "$S" ]; then s "$S" ""
elif [ -e "$S" ]; then M special
else M missing; fi
M done"#;

/// ECS Exec's command line that receives a copy into `dest` (`name` is the source's
/// own name, `directory` whether a tree comes).
pub fn receive(nonce: &str, dest: &str, name: &str, directory: bool) -> String {
    let kind = if directory { "d" } else { "f" };
    command(RECEIVE, &[nonce, dest, name, kind])
}

/// ECS Exec's command line that sends `source` (its tree, if `recursive`).
pub fn send(nonce: &str, source: &str, recursive: bool) -> String {
    command(SEND, &[nonce, source, if recursive { "r" } else { "-" }])
}

fn command(script: &str, args: &[&str]) -> String {
    let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
    format!(
        "sh -c {} jump-cp {}",
        shell_quote(script),
        remote_command(&args)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs a script as ECS Exec would (the agent splits its command line as a shell
    /// would), here, with `stdin`, and returns what it printed.
    fn run_here(command: &str, stdin: &[u8]) -> Vec<u8> {
        use std::io::Write as _;
        let mut child = std::process::Command::new("sh")
            .arg("-c")
            .arg(command)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        child.stdin.take().unwrap().write_all(stdin).unwrap();
        child.wait_with_output().unwrap().stdout
    }

    #[test]
    fn sending_a_missing_path_says_so_and_a_directory_needs_recursion() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("nope");
        let out = run_here(&send("n", missing.to_str().unwrap(), false), b"");
        let text = String::from_utf8_lossy(&out);
        assert!(text.contains("\x1b]jump;n;ready=b\x07"), "{text:?}");
        assert!(text.contains("\x1b]jump;n;missing\x07"), "{text:?}");
        let out = run_here(&send("n", dir.path().to_str().unwrap(), false), b"");
        assert!(String::from_utf8_lossy(&out).contains("jump;n;isdir"));
    }

    #[test]
    fn receiving_writes_each_file_and_reports_its_cksum() {
        let dir = tempfile::tempdir().unwrap();
        let dest = dir.path().join("it's here");
        let mut input = b"f \n".to_vec();
        input.extend(crate::connect::copy::codec::Coding::Base64.encode(b"123456789"));
        // A pipe has no terminal to turn Ctrl-D into end of input: close it instead.
        let out = run_here(&receive("n", dest.to_str().unwrap(), "x", false), &input);
        assert_eq!(std::fs::read(&dest).unwrap(), b"123456789");
        let text = String::from_utf8_lossy(&out);
        assert!(text.contains("jump;n;wrote=930766865 9"), "{text:?}");
    }
}
