#!/bin/sh
# Installs jump from a GitHub release: the static binary for this machine, checked
# against the release's SHA256SUMS before anything is put in place.
#
#   curl -fsSL https://github.com/OWNER/REPO/releases/latest/download/install.sh | sh
#   sh install.sh --version v0.2.0 --to /usr/local/bin
#
# Options:
#   --version TAG   a release tag (default: the latest release)
#   --to DIR        where the binary goes (default: $HOME/.local/bin)
#   --from URL      the release's download directory, instead of GitHub's (a mirror,
#                   an internal artifact store); SHA256SUMS must be there too
# Environment: JUMP_REPOSITORY=owner/name (set in the copy each release publishes).
# Needs curl or wget, tar, and sha256sum or shasum. Nothing is installed unless the
# checksum matches; a failed install leaves nothing behind.
set -eu

repository=${JUMP_REPOSITORY:-}
version=latest
to=${HOME:-}/.local/bin
from=

die() { printf 'install.sh: %s\n' "$*" >&2; exit 1; }

while [ "$#" -gt 0 ]; do
    case "$1" in
        --version) [ "$#" -ge 2 ] || die "--version needs a tag (e.g. v0.2.0)"; version=$2; shift 2 ;;
        --to) [ "$#" -ge 2 ] || die "--to needs a directory"; to=$2; shift 2 ;;
        --from) [ "$#" -ge 2 ] || die "--from needs a URL"; from=$2; shift 2 ;;
        -h|--help) sed -n '2,15s/^# \{0,1\}//p' "$0"; exit 0 ;;
        *) die "unknown argument '$1' (see --help)" ;;
    esac
done

case "$(uname -s)/$(uname -m)" in
    Linux/x86_64|Linux/amd64) target=x86_64-unknown-linux-musl ;;
    Linux/aarch64|Linux/arm64) target=aarch64-unknown-linux-musl ;;
    Darwin/x86_64) target=x86_64-apple-darwin ;;
    Darwin/arm64) target=aarch64-apple-darwin ;;
    *) die "no release binary for $(uname -s) $(uname -m): build it with 'cargo install --locked --path .'" ;;
esac

if [ -z "$from" ]; then
    [ -n "$repository" ] || die "say where the releases are: --from URL, or JUMP_REPOSITORY=owner/name"
    if [ "$version" = latest ]; then
        from=https://github.com/$repository/releases/latest/download
    else
        from=https://github.com/$repository/releases/download/$version
    fi
fi

if command -v curl >/dev/null 2>&1; then
    fetch() { curl -fsSL --proto '=https,http,file' -o "$2" "$1"; }
elif command -v wget >/dev/null 2>&1; then
    fetch() { wget -q -O "$2" "$1"; }
else
    die "needs curl or wget"
fi
if command -v sha256sum >/dev/null 2>&1; then
    sha256() { sha256sum "$1" | cut -d' ' -f1; }
elif command -v shasum >/dev/null 2>&1; then
    sha256() { shasum -a 256 "$1" | cut -d' ' -f1; }
else
    die "needs sha256sum or shasum, to check what it downloads"
fi

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
trap 'exit 130' INT TERM
asset=jump-$target.tar.gz
fetch "$from/$asset" "$work/$asset" || die "could not download $from/$asset"
fetch "$from/SHA256SUMS" "$work/SHA256SUMS" || die "could not download $from/SHA256SUMS"
expected=$(awk -v name="$asset" '$2 == name || $2 == "*" name { print $1 }' "$work/SHA256SUMS")
[ -n "$expected" ] || die "SHA256SUMS lists no $asset"
actual=$(sha256 "$work/$asset")
[ "$actual" = "$expected" ] || die "checksum mismatch for $asset: expected $expected, got $actual; nothing installed"

tar -xzf "$work/$asset" -C "$work" jump
mkdir -p "$to"
cp "$work/jump" "$to/jump.new.$$"
chmod 0755 "$to/jump.new.$$"
mv -f "$to/jump.new.$$" "$to/jump"
printf 'installed jump %s (%s) in %s\n' "$("$to/jump" --version | cut -d' ' -f2)" "$target" "$to"
case ":${PATH:-}:" in
    *":$to:"*) ;;
    *) printf 'note: %s is not on your PATH\n' "$to" ;;
esac
printf 'man page: jump man > ~/.local/share/man/man1/jump.1; completions: jump completions bash|zsh|fish\n'
