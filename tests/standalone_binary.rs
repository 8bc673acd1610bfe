//! The `driftdb` binary on its own: copied into an empty directory it serves the demos and the inspector it
//! embedded at build time, `--version` names the commit, and `--config FILE` is read with flags and environment
//! variables winning over it.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use reqwest::StatusCode;
use reqwest::redirect::Policy;
use serde_json::{Value, json};

/// Whether this build embedded the demos (`build.rs` found `js/demos/dist`); `scripts/test` builds them first.
fn embedded_demos() -> bool {
    env!("DRIFTDB_EMBED_DIR").ends_with("dist")
}

/// An empty directory of its own for one test, removed (with the copied binary) when the test ends.
fn empty_dir(name: &str) -> tempfile::TempDir {
    tempfile::Builder::new().prefix(&format!("driftdb-{name}-")).tempdir().unwrap()
}

/// The binary copied alone into `dir`.
fn copy_binary(dir: &Path) -> PathBuf {
    let copy = dir.join("driftdb");
    std::fs::copy(env!("CARGO_BIN_EXE_driftdb"), &copy).unwrap();
    copy
}

/// A server process, killed when dropped.
struct Server {
    child: Child,
    url: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts `binary serve ARGS` in `dir` and waits for its "listening on" line.
fn start(binary: &Path, dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Server {
    let mut command = Command::new(binary);
    command.arg("serve").args(args).current_dir(dir).stdout(Stdio::piped()).stderr(Stdio::inherit());
    for var in ["DRIFTDB_HOST", "DRIFTDB_PORT", "DRIFTDB_WT_PORT", "DRIFTDB_CONFIG"] {
        command.env_remove(var);
    }
    command.envs(env.iter().copied());
    let mut child = command.spawn().unwrap();
    let stdout = child.stdout.take().unwrap();
    let mut lines = BufReader::new(stdout).lines();
    let line = lines.next().expect("the server printed nothing").unwrap();
    let url = line.strip_prefix("driftdb listening on ").unwrap_or_else(|| panic!("unexpected line {line:?}"));
    Server { url: url.to_owned(), child }
}

fn client() -> reqwest::Client {
    reqwest::Client::builder().redirect(Policy::none()).build().unwrap()
}

async fn text(url: String) -> (StatusCode, String) {
    let response = client().get(url).send().await.unwrap();
    (response.status(), response.text().await.unwrap())
}

#[tokio::test]
async fn a_copied_binary_serves_the_demos_and_the_inspector() {
    let temp = empty_dir("standalone");
    let dir = temp.path();
    let binary = copy_binary(dir);
    let server = start(&binary, dir, &["--port", "0", "--no-webtransport"], &[]);

    let (status, page) = text(format!("{}/", server.url)).await;
    assert_eq!(status, StatusCode::OK);
    if !embedded_demos() {
        assert!(page.contains("built without the demos"), "{page}");
        assert!(page.contains("npm run build --workspace=driftdb-demos"), "{page}");
        return;
    }
    assert!(page.contains("<title>DriftDB demos</title>"), "{page}");
    // The app is one page with hash routes: the demos and the inspector are in its script.
    let script = page.split("src=\"").nth(1).and_then(|rest| rest.split('"').next()).expect("a script in the page");
    let (status, code) = text(format!("{}/{}", server.url, script.trim_start_matches("./"))).await;
    assert_eq!(status, StatusCode::OK);
    for marker in ["page-inspect", "Tic-tac-toe"] {
        assert!(code.contains(marker), "the app script has no {marker:?}");
    }

    let inspect = client().get(format!("{}/inspect?room=abc", server.url)).send().await.unwrap();
    assert!(inspect.status().is_redirection(), "{}", inspect.status());
    assert_eq!(inspect.headers()["location"], "/?_driftdb_room=abc#/inspect");
    let (status, _) = text(format!("{}/no-such-file.js", server.url)).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn the_inspect_endpoint_reports_what_the_protocol_does_not() {
    let temp = empty_dir("inspect-endpoint");
    let dir = temp.path();
    let server = start(Path::new(env!("CARGO_BIN_EXE_driftdb")), dir, &["--port", "0", "--no-webtransport"], &[]);
    let http = client();
    let (status, _) = text(format!("{}/room/unknownroom/inspect", server.url)).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "inspecting creates no room");

    let room: Value = http.post(format!("{}/new", server.url)).send().await.unwrap().json().await.unwrap();
    let send_url = room["http_url"].as_str().unwrap();
    for value in [json!({"n": 1}), json!({"n": 2})] {
        let push = json!({"type": "push", "key": "k", "action": {"type": "append"}, "value": value});
        assert!(http.post(send_url).json(&push).send().await.unwrap().status().is_success());
    }
    let snapshot: Value = http
        .get(format!("{}/room/{}/inspect", server.url, room["room"].as_str().unwrap()))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(snapshot["seq"], 2);
    assert_eq!(snapshot["keys"][0]["key"], "k");
    assert_eq!(snapshot["keys"][0]["entries"], 2);
    assert_eq!(snapshot["keys"][0]["last_seq"], 2);
    assert_eq!(snapshot["connections"]["total"], 0);
    assert_eq!(snapshot["epoch"].as_str().unwrap().len(), 16);
}

#[test]
fn version_names_the_commit() {
    let output = Command::new(env!("CARGO_BIN_EXE_driftdb")).arg("--version").output().unwrap();
    let version = String::from_utf8(output.stdout).unwrap();
    assert!(version.starts_with(&format!("driftdb {} (commit ", env!("CARGO_PKG_VERSION"))), "{version}");
}

#[tokio::test]
async fn the_config_file_is_read_and_flags_and_environment_win_over_it() {
    let temp = empty_dir("config");
    let dir = temp.path();
    // 192.0.2.1 is a documentation address no machine has: the server starts only if the environment's host won.
    let file = "host = \"192.0.2.1\"\nport = 1\nmax-rooms = 1\nno-webtransport = true\n";
    std::fs::write(dir.join("driftdb.toml"), file).unwrap();
    let binary = Path::new(env!("CARGO_BIN_EXE_driftdb"));
    let server = start(binary, dir, &["--config", "driftdb.toml", "--port", "0"], &[("DRIFTDB_HOST", "127.0.0.1")]);
    assert!(server.url.starts_with("http://127.0.0.1:"), "{}", server.url);
    assert!(!server.url.ends_with(":1"), "the flag's port wins over the file's: {}", server.url);

    let http = client();
    let first = http.post(format!("{}/new", server.url)).send().await.unwrap();
    assert_eq!(first.status(), StatusCode::OK);
    let info: Value = first.json().await.unwrap();
    assert!(info.get("webtransport_url").is_none(), "the file turned WebTransport off: {info}");
    let second = http.post(format!("{}/new", server.url)).send().await.unwrap();
    assert_eq!(second.status(), StatusCode::SERVICE_UNAVAILABLE, "the file's max-rooms = 1 applies");
}

#[test]
fn config_check_names_an_unknown_key() {
    let temp = empty_dir("config-check");
    let dir = temp.path();
    std::fs::write(dir.join("bad.toml"), "max-rooms = 5\nmax-roms = 6\n").unwrap();
    let output =
        Command::new(env!("CARGO_BIN_EXE_driftdb")).args(["config", "check", "bad.toml"]).current_dir(dir).output();
    let output = output.unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("unknown key `max-roms`"), "{stderr}");

    let example = concat!(env!("CARGO_MANIFEST_DIR"), "/driftdb.example.toml");
    let output = Command::new(env!("CARGO_BIN_EXE_driftdb")).args(["config", "check", example]).output().unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let settings: Value = serde_json::from_slice(output.stdout.splitn(2, |&b| b == b'\n').nth(1).unwrap()).unwrap();
    assert_eq!(settings["max-rooms"], 100_000);
}
