//! Build-time facts the binary carries: the git commit it was built from (for `driftdb --version`) and the directory
//! of built demos it embeds (`js/demos/dist`, or an empty one when the JS build was not done).

use std::path::{Path, PathBuf};
use std::process::Command;

fn main() {
    let manifest_dir = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR"));
    println!("cargo:rustc-env=DRIFTDB_GIT_COMMIT={}", git_commit(&manifest_dir));
    println!("cargo:rustc-env=DRIFTDB_EMBED_DIR={}", embed_dir(&manifest_dir).display());
}

/// `DRIFTDB_GIT_COMMIT` when set (a build from a tarball can pass it), else the checkout's short commit hash, else
/// `unknown` (no git, or a tarball unpacked inside some other repository).
fn git_commit(manifest_dir: &Path) -> String {
    println!("cargo:rerun-if-env-changed=DRIFTDB_GIT_COMMIT");
    if let Ok(commit) = std::env::var("DRIFTDB_GIT_COMMIT") {
        return commit;
    }
    let git = |args: &[&str]| {
        let output = Command::new("git").args(args).current_dir(manifest_dir).output().ok()?;
        output.status.success().then(|| String::from_utf8_lossy(&output.stdout).trim().to_owned())
    };
    let top_level = git(&["rev-parse", "--show-toplevel"]).map(PathBuf::from);
    if top_level.and_then(|dir| dir.canonicalize().ok()) != manifest_dir.canonicalize().ok() {
        return "unknown".to_owned();
    }
    // HEAD moves on checkout, its reflog on every commit (worktrees have their own of both).
    for file in ["HEAD", "logs/HEAD"] {
        if let Some(path) = git(&["rev-parse", "--path-format=absolute", "--git-path", file]) {
            println!("cargo:rerun-if-changed={path}");
        }
    }
    git(&["rev-parse", "--short=12", "HEAD"]).unwrap_or_else(|| "unknown".to_owned())
}

/// The built demos when they exist, else an empty directory (the server then explains how to build them).
fn embed_dir(manifest_dir: &Path) -> PathBuf {
    let demos = manifest_dir.join("js/demos/dist");
    println!("cargo:rerun-if-changed={}", demos.display());
    if demos.join("index.html").is_file() {
        return demos;
    }
    let empty = PathBuf::from(std::env::var_os("OUT_DIR").expect("cargo sets OUT_DIR")).join("no-demos");
    std::fs::create_dir_all(&empty).expect("cannot create an empty directory in OUT_DIR");
    empty
}
