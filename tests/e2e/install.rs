//! install.sh, as a user runs it against a release: the right binary for this machine,
//! installed only if the release's checksums vouch for it.

use std::path::Path;
use std::process::{Command, Output};

use crate::support::{repo, stderr, stdout};

/// A release directory as the release workflow publishes it, holding this build of jump
/// for this machine's target; `tamper` changes the archive after its checksum was taken.
fn release(dir: &Path, tamper: bool) {
    let target = match std::env::consts::ARCH {
        "x86_64" => "x86_64-unknown-linux-musl",
        "aarch64" => "aarch64-unknown-linux-musl",
        other => panic!("no release target for {other}"),
    };
    let staging = dir.join("staging");
    std::fs::create_dir_all(&staging).unwrap();
    std::fs::copy(env!("CARGO_BIN_EXE_jump"), staging.join("jump")).unwrap();
    let asset = format!("jump-{target}.tar.gz");
    let packed = Command::new("tar")
        .arg("-C")
        .arg(&staging)
        .args(["-czf"])
        .arg(dir.join(&asset))
        .arg("jump")
        .status()
        .unwrap();
    assert!(packed.success());
    let sums = Command::new("sha256sum")
        .arg(&asset)
        .current_dir(dir)
        .output()
        .unwrap();
    std::fs::write(dir.join("SHA256SUMS"), &sums.stdout).unwrap();
    if tamper {
        let mut bytes = std::fs::read(dir.join(&asset)).unwrap();
        let last = bytes.len() - 1;
        bytes[last] ^= 0xff;
        std::fs::write(dir.join(&asset), bytes).unwrap();
    }
}

fn install(args: &[&str]) -> Output {
    Command::new("sh")
        .arg(repo().join("install.sh"))
        .args(args)
        .env_remove("JUMP_REPOSITORY")
        .output()
        .expect("sh runs")
}

#[test]
fn install_sh_installs_the_release_binary_once_its_checksum_matches() {
    let dir = tempfile::tempdir().unwrap();
    release(dir.path(), false);
    let to = dir.path().join("bin");
    let from = format!("file://{}", dir.path().display());
    let out = install(&["--from", &from, "--to", to.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "stderr: {}", stderr(&out));
    assert!(
        stdout(&out).contains(&format!("installed jump {}", env!("CARGO_PKG_VERSION"))),
        "{}",
        stdout(&out)
    );
    let version = Command::new(to.join("jump"))
        .arg("--version")
        .output()
        .unwrap();
    assert_eq!(
        stdout(&version),
        format!("jump {}\n", env!("CARGO_PKG_VERSION"))
    );
}

#[test]
fn install_sh_refuses_an_archive_its_checksums_do_not_vouch_for() {
    let dir = tempfile::tempdir().unwrap();
    release(dir.path(), true);
    let to = dir.path().join("bin");
    let from = format!("file://{}", dir.path().display());
    let out = install(&["--from", &from, "--to", to.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1), "stdout: {}", stdout(&out));
    assert!(
        stderr(&out).contains("checksum mismatch for jump-")
            && stderr(&out).contains("nothing installed"),
        "{}",
        stderr(&out)
    );
    assert!(!to.exists(), "a refused install left {}", to.display());

    // Nowhere to download from: said before anything is fetched.
    let out = install(&["--to", to.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("--from URL, or JUMP_REPOSITORY"),
        "{}",
        stderr(&out)
    );
}

/// The release job's own step, run on a build's archive: the install.sh it publishes
/// knows the repository, SHA256SUMS covers every asset, and that install.sh installs
/// from that directory.
#[test]
fn the_release_workflow_publishes_an_install_sh_that_installs_from_its_release() {
    let dir = tempfile::tempdir().unwrap();
    let dist = dir.path().join("dist");
    std::fs::create_dir_all(&dist).unwrap();
    release(&dist, false);
    std::fs::remove_file(dist.join("SHA256SUMS")).unwrap();
    std::fs::remove_dir_all(dist.join("staging")).unwrap();
    std::fs::copy(repo().join("install.sh"), dir.path().join("install.sh")).unwrap();
    let workflow = crate::workflows::read_workflow(&repo().join(".github/workflows/release.yml"));
    let step = workflow["jobs"]["release"]["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| {
            s["name"]
                .as_str()
                .is_some_and(|n| n.starts_with("install.sh for this repository"))
        })
        .expect("the release job has the install.sh step");
    let out = Command::new("bash")
        .args(["-eo", "pipefail", "-c", step["run"].as_str().unwrap()])
        .current_dir(dir.path())
        .env("REPOSITORY", "acme/jump")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "stderr: {}", stderr(&out));
    let published = std::fs::read_to_string(dist.join("install.sh")).unwrap();
    assert!(
        published.contains("repository=${JUMP_REPOSITORY:-acme/jump}"),
        "the published install.sh does not know its repository"
    );
    let sums = std::fs::read_to_string(dist.join("SHA256SUMS")).unwrap();
    assert!(
        sums.contains(" install.sh\n") && sums.contains(" jump-"),
        "{sums}"
    );

    let to = dir.path().join("bin");
    let out = Command::new("sh")
        .arg(dist.join("install.sh"))
        .args(["--from", &format!("file://{}", dist.display())])
        .args(["--to", to.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "stderr: {}", stderr(&out));
    assert!(to.join("jump").exists());
}
