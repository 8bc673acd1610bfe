//! Signed room tokens end to end: a real server (in-process, or the binary for the log check) with real key files,
//! real JWTs, and real WebSocket, WebTransport and HTTP clients.

mod common;
mod wt_support;

use std::path::{Path, PathBuf};
use std::time::Duration;

use common::{Encoding, TestServer, WsClient, json_body, msg};
use driftdb::auth::keys::{self, KeyAlgorithm, SigningKeyFile};
use driftdb::auth::{self, Capability, Claims, RoomPattern};
use driftdb::config::ServerConfig;
use driftdb::protocol::{Action, ClientMessage, Replay, ServerMessage};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use wt_support::{WtClient, hashes, push, url, volatile};

use Capability::{Debug, Read, Relay, Volatile, Write};

/// A directory of freshly made key files, removed at the end of the test.
struct KeyDir(PathBuf);

impl KeyDir {
    fn new() -> Self {
        let dir = std::env::temp_dir().join(format!("driftdb-auth-{}-{:016x}", std::process::id(), rand_u64()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        KeyDir(dir)
    }

    /// Makes a key; returns its signing key and the file the server verifies with.
    fn key(&self, kid: &str, algorithm: KeyAlgorithm) -> (SigningKeyFile, PathBuf) {
        let (signing, verifying) = keys::generate(kid, algorithm);
        let signing_path = self.0.join(format!("{kid}.jwk"));
        keys::write_jwk(&signing_path, &signing).expect("write key");
        let verifying_path = if signing == verifying {
            signing_path.clone()
        } else {
            let path = self.0.join(format!("{kid}.pub.jwk"));
            keys::write_jwk(&path, &verifying).expect("write public key");
            path
        };
        (SigningKeyFile::load(&signing_path).expect("signing key loads"), verifying_path)
    }

    fn file(&self, name: &str, text: &str) -> PathBuf {
        let path = self.0.join(name);
        std::fs::write(&path, text).expect("write file");
        path
    }
}

impl Drop for KeyDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn rand_u64() -> u64 {
    use std::hash::{BuildHasher, RandomState};
    RandomState::new().hash_one(std::time::SystemTime::now())
}

/// A token for `room` allowing `can`, valid for `ttl_secs` (negative: already expired).
fn token(key: &SigningKeyFile, room: &str, can: &[Capability], ttl_secs: i64) -> String {
    let claims = Claims {
        exp: auth::now_secs().saturating_add_signed(ttl_secs),
        nbf: None,
        room: RoomPattern::parse(room),
        can: can.to_vec(),
        sub: Some("tester".into()),
        aud: None,
    };
    auth::issue(key, &claims)
}

async fn server_with_keys(files: &[&Path]) -> TestServer {
    let files: Vec<PathBuf> = files.iter().map(|p| p.to_path_buf()).collect();
    TestServer::start_with(move |config: &mut ServerConfig| config.auth.auth_key_files = files).await
}

async fn ws(server: &TestServer, room: &str, token: &str) -> WsClient {
    server.connect_with(room, &format!("?token={token}"), Encoding::Json).await
}

/// The `error` message text that follows `message`, the connection staying open.
async fn refused_in_band(client: &mut WsClient, message: &Value) -> String {
    client.send(message).await;
    let replies = client.round_trip().await;
    assert_eq!(replies.len(), 1, "one error for {message}: {replies:?}");
    assert_eq!(replies[0]["type"], "error", "{replies:?}");
    replies[0]["message"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn websocket_refusals_have_their_status_before_the_upgrade() {
    let keys = KeyDir::new();
    let (key, public) = keys.key("ed1", KeyAlgorithm::EdDsa);
    let server = server_with_keys(&[&public]).await;
    let connect = |query: String| format!("/room/r1/connect{query}");
    assert_eq!(server.connect_refused(&connect(String::new())).await, StatusCode::UNAUTHORIZED);
    assert_eq!(server.connect_refused(&connect("?token=not-a-jwt".into())).await, StatusCode::UNAUTHORIZED);
    let expired = token(&key, "r1", &[Read], -5);
    assert_eq!(server.connect_refused(&connect(format!("?token={expired}"))).await, StatusCode::UNAUTHORIZED);
    let other_room = token(&key, "r2", &[Read], 60);
    assert_eq!(server.connect_refused(&connect(format!("?token={other_room}"))).await, StatusCode::FORBIDDEN);
    let no_debug = token(&key, "r1", &[Read], 60);
    let debug_query = format!("?debug=true&token={no_debug}");
    assert_eq!(server.connect_refused(&connect(debug_query)).await, StatusCode::FORBIDDEN);
    // A token signed by a key the server does not know.
    let stranger = KeyDir::new().key("ed1", KeyAlgorithm::EdDsa).0;
    let forged = token(&stranger, "r1", &[Read], 60);
    assert_eq!(server.connect_refused(&connect(format!("?token={forged}"))).await, StatusCode::UNAUTHORIZED);
    assert!(!server.has_room("r1"), "a refused connection creates no room");

    let debug = token(&key, "r1", &[Read, Debug], 60);
    let mut client = server.connect_with("r1", &format!("?debug=true&token={debug}"), Encoding::Json).await;
    client.assert_nothing_pending().await;
    // A debug connection keeps needing `debug` when it refreshes its token.
    let refresh = json!({"type": "auth", "token": token(&key, "r1", &[Read], 60)});
    assert_eq!(refused_in_band(&mut client, &refresh).await, "the token lacks the `debug` capability");
}

#[tokio::test]
async fn audience_and_not_before_are_checked() {
    let keys = KeyDir::new();
    let (key, public) = keys.key("ed1", KeyAlgorithm::EdDsa);
    let server = TestServer::start_with(|config| {
        config.auth.auth_key_files = vec![public];
        config.auth.auth_audience = Some("my-app".into());
    })
    .await;
    let claims = |aud: Option<&str>, nbf: Option<u64>| Claims {
        exp: auth::now_secs() + 60,
        nbf,
        room: RoomPattern::parse("r"),
        can: vec![Read],
        sub: None,
        aud: aud.map(str::to_owned),
    };
    let path = |claims: &Claims| format!("/room/r/connect?token={}", auth::issue(&key, claims));
    assert_eq!(server.connect_refused(&path(&claims(None, None))).await, StatusCode::UNAUTHORIZED);
    assert_eq!(server.connect_refused(&path(&claims(Some("other"), None))).await, StatusCode::UNAUTHORIZED);
    let later = Some(auth::now_secs() + 600);
    assert_eq!(server.connect_refused(&path(&claims(Some("my-app"), later))).await, StatusCode::UNAUTHORIZED);
    let ok = auth::issue(&key, &claims(Some("my-app"), Some(auth::now_secs())));
    ws(&server, "r", &ok).await.assert_nothing_pending().await;
}

#[tokio::test]
async fn bad_key_files_stop_the_server_with_a_clear_error() {
    let keys = KeyDir::new();
    let (_, public) = keys.key("ed1", KeyAlgorithm::EdDsa);
    let private = keys.0.join("ed1.jwk");
    let short_secret = keys.file("short.jwk", r#"{"kty":"oct","kid":"s","k":"c2hvcnQ"}"#);
    let cases = [
        (vec![private], "holds a private key"),
        (vec![short_secret], "at least 32 bytes"),
        (vec![public.clone(), public], "two key files use the key id `ed1`"),
        (vec![keys.0.join("missing.jwk")], "cannot read key file"),
    ];
    for (files, expected) in cases {
        let auth = driftdb::config::AuthConfig { auth_key_files: files, ..Default::default() };
        let config = ServerConfig { port: 0, no_webtransport: true, auth, ..Default::default() };
        let Err(error) = driftdb::server::RunningServer::start(config).await else {
            panic!("started with bad key files ({expected})");
        };
        assert!(error.to_string().contains(expected), "{error}");
    }
}

#[tokio::test]
async fn read_only_and_write_only_tokens_on_the_websocket() {
    let keys = KeyDir::new();
    let (key, public) = keys.key("ed1", KeyAlgorithm::EdDsa);
    let server = server_with_keys(&[&public]).await;
    let mut reader = ws(&server, "game", &token(&key, "game", &[Read], 60)).await;
    let mut writer = ws(&server, "game", &token(&key, "game", &[Write], 60)).await;
    reader.subscribe("count").await;

    let error = refused_in_band(&mut reader, &msg::append("count", json!(1))).await;
    assert_eq!(error, "the token lacks the `write` capability");
    assert!(refused_in_band(&mut reader, &msg::relay("count", json!(1))).await.contains("`relay`"));
    let volatile = json!({"type": "push", "key": "c", "value": 1, "action": {"type": "relay"}, "volatile": true});
    assert!(refused_in_band(&mut reader, &volatile).await.contains("`volatile`"));
    assert!(refused_in_band(&mut writer, &msg::get("count", json!(0))).await.contains("`read`"));

    // The refused push stored nothing; the writer's goes through to the reader, who is still connected.
    writer.send(&msg::append("count", json!(7))).await;
    let (seq, value) = reader.expect_push("count").await;
    assert_eq!((seq, value), (1, json!(7)));
    writer.assert_nothing_pending().await;
    reader.assert_nothing_pending().await;
}

#[tokio::test]
async fn room_patterns_hs256_and_eddsa_keys_side_by_side() {
    let keys = KeyDir::new();
    let (ed, ed_public) = keys.key("ed1", KeyAlgorithm::EdDsa);
    let (hs, hs_file) = keys.key("hs1", KeyAlgorithm::Hs256);
    let server = server_with_keys(&[&ed_public, &hs_file]).await;
    for key in [&ed, &hs] {
        let pattern = token(key, "game-42-*", &[Read, Write], 60);
        let mut client = ws(&server, "game-42-lobby", &pattern).await;
        client.subscribe("k").await;
        client.send(&msg::append("k", json!("hi"))).await;
        client.expect_push("k").await;
        let path = format!("/room/game-43-lobby/connect?token={pattern}");
        assert_eq!(server.connect_refused(&path).await, StatusCode::FORBIDDEN);
        let path = format!("/room/game-42/connect?token={pattern}");
        assert_eq!(server.connect_refused(&path).await, StatusCode::FORBIDDEN, "the prefix includes the dash");
    }
}

#[tokio::test]
async fn rotation_two_keys_live_then_the_old_one_removed() {
    let keys = KeyDir::new();
    let (old, old_public) = keys.key("2026-01", KeyAlgorithm::EdDsa);
    let (new, new_public) = keys.key("2026-02", KeyAlgorithm::EdDsa);
    let (old_token, new_token) = (token(&old, "r", &[Read], 600), token(&new, "r", &[Read], 600));

    let both = server_with_keys(&[&old_public, &new_public]).await;
    ws(&both, "r", &old_token).await.assert_nothing_pending().await;
    ws(&both, "r", &new_token).await.assert_nothing_pending().await;
    both.shutdown().await;

    let new_only = server_with_keys(&[&new_public]).await;
    let path = format!("/room/r/connect?token={old_token}");
    assert_eq!(new_only.connect_refused(&path).await, StatusCode::UNAUTHORIZED);
    ws(&new_only, "r", &new_token).await.assert_nothing_pending().await;
}

#[tokio::test]
async fn in_band_refresh_keeps_the_websocket_and_no_refresh_closes_it_at_exp() {
    let keys = KeyDir::new();
    let (key, public) = keys.key("ed1", KeyAlgorithm::EdDsa);
    let server = server_with_keys(&[&public]).await;
    let mut refreshed = ws(&server, "r", &token(&key, "r", &[Read], 3)).await;
    let mut lapsing = ws(&server, "r", &token(&key, "r", &[Read], 3)).await;
    refreshed.subscribe("k").await;

    // A bad refresh is refused in-band and changes nothing.
    let bad = json!({"type": "auth", "token": token(&key, "elsewhere", &[Read], 60)});
    assert_eq!(refused_in_band(&mut refreshed, &bad).await, "the token is not for room `r`");
    refreshed.send(&json!({"type": "auth", "token": token(&key, "r", &[Read, Write], 60)})).await;
    refreshed.assert_nothing_pending().await;

    let closed = lapsing.expect_close().await;
    assert_eq!(closed.code, 4008, "{closed:?}");
    // Well past the first token's exp, the refreshed connection is open and has the new token's capabilities.
    tokio::time::sleep(Duration::from_secs(1)).await;
    refreshed.send(&msg::append("k", json!(1))).await;
    refreshed.expect_push("k").await;
}

#[tokio::test]
async fn http_send_checks_the_bearer_token() {
    let keys = KeyDir::new();
    let (key, public) = keys.key("hs1", KeyAlgorithm::Hs256);
    let (ed, ed_public) = keys.key("ed1", KeyAlgorithm::EdDsa);
    let server = server_with_keys(&[&public, &ed_public]).await;
    let send = |token: Option<String>, message: Value| {
        let request = server.request(Method::POST, "/room/r/send").body(message.to_string());
        let request = match token {
            Some(token) => request.bearer_auth(token),
            None => request,
        };
        server.fetch(request)
    };
    let append = msg::append("k", json!(1));
    let status = |response: reqwest::Response| response.status();
    assert_eq!(status(send(None, append.clone()).await), StatusCode::UNAUTHORIZED);
    assert_eq!(status(send(Some("a.b.c".into()), append.clone()).await), StatusCode::UNAUTHORIZED);
    assert_eq!(status(send(Some(token(&key, "r", &[Write], -5)), append.clone()).await), StatusCode::UNAUTHORIZED);
    assert_eq!(status(send(Some(token(&key, "q", &[Write], 60)), append.clone()).await), StatusCode::FORBIDDEN);
    let reply = json_body(send(Some(token(&key, "r", &[Read], 60)), append.clone()).await, StatusCode::FORBIDDEN).await;
    assert_eq!(reply, json!({"type": "error", "message": "the token lacks the `write` capability"}));

    let writer = token(&ed, "r", &[Write], 60);
    json_body(send(Some(writer.clone()), append.clone()).await, StatusCode::OK).await;
    let get = msg::get("k", json!(0));
    let refused = json_body(send(Some(writer), get.clone()).await, StatusCode::FORBIDDEN).await;
    assert!(refused["message"].as_str().unwrap().contains("`read`"), "{refused}");
    let init = json_body(send(Some(token(&key, "r", &[Read], 60)), get).await, StatusCode::OK).await;
    assert_eq!(init["data"][0]["value"], 1, "{init}");
    // `?token=` works on HTTP too.
    let path = format!("/room/r/send?token={}", token(&key, "r", &[Relay], 60));
    json_body(server.post(&path, msg::relay("k", json!(2)).to_string()).await, StatusCode::OK).await;
}

#[tokio::test]
async fn the_admin_token_guards_room_creation() {
    let keys = KeyDir::new();
    let (key, public) = keys.key("ed1", KeyAlgorithm::EdDsa);
    let admin = keys.file("admin", "s3cret-admin-token\n");
    let server = TestServer::start_with(|config| {
        config.auth.auth_key_files = vec![public];
        config.auth.admin_token_file = Some(admin);
    })
    .await;
    let new_room = |bearer: Option<&str>| {
        let request = server.request(Method::POST, "/new");
        server.fetch(match bearer {
            Some(bearer) => request.bearer_auth(bearer),
            None => request,
        })
    };
    assert_eq!(new_room(None).await.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(new_room(Some("wrong")).await.status(), StatusCode::UNAUTHORIZED);
    let info = json_body(new_room(Some("s3cret-admin-token")).await, StatusCode::OK).await;
    let room = info["room"].as_str().unwrap();

    // Room info: a token for the room sees an existing room but cannot create one by asking; the admin can.
    let info_of = |room: &str, bearer: String| {
        server.fetch(server.request(Method::GET, &format!("/room/{room}")).bearer_auth(bearer))
    };
    json_body(info_of(room, token(&key, room, &[Read], 60)).await, StatusCode::OK).await;
    assert_eq!(info_of(room, token(&key, "other", &[Read], 60)).await.status(), StatusCode::FORBIDDEN);
    assert_eq!(info_of("fresh", token(&key, "fresh", &[Read], 60)).await.status(), StatusCode::UNAUTHORIZED);
    assert!(!server.has_room("fresh"));
    json_body(info_of("fresh", "s3cret-admin-token".into()).await, StatusCode::OK).await;
    assert!(server.has_room("fresh"));
}

#[tokio::test]
async fn the_room_inspector_needs_the_debug_capability() {
    let keys = KeyDir::new();
    let (key, public) = keys.key("ed1", KeyAlgorithm::EdDsa);
    let server = server_with_keys(&[&public]).await;
    let writer = token(&key, "r", &[Write], 60);
    json_body(
        server
            .fetch(
                server
                    .request(Method::POST, "/room/r/send")
                    .bearer_auth(&writer)
                    .body(msg::append("k", json!(1)).to_string()),
            )
            .await,
        StatusCode::OK,
    )
    .await;
    let inspect = |bearer: Option<String>| {
        let request = server.request(Method::GET, "/room/r/inspect");
        server.fetch(match bearer {
            Some(bearer) => request.bearer_auth(bearer),
            None => request,
        })
    };
    assert_eq!(inspect(None).await.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(inspect(Some(token(&key, "r", &[Read], 60))).await.status(), StatusCode::FORBIDDEN);
    assert_eq!(inspect(Some(token(&key, "r", &[Debug], 60))).await.status(), StatusCode::OK);
}

#[tokio::test]
async fn auth_off_needs_no_token_and_the_admin_token_alone_guards_new() {
    let keys = KeyDir::new();
    let admin = keys.file("admin", "only-admin");
    let server = TestServer::start_with(|config| config.auth.admin_token_file = Some(admin)).await;
    assert_eq!(server.post("/new", "").await.status(), StatusCode::UNAUTHORIZED);
    let ok = server.fetch(server.request(Method::POST, "/new").bearer_auth("only-admin")).await;
    let room = json_body(ok, StatusCode::OK).await["room"].as_str().unwrap().to_owned();
    let mut client = server.connect(&room, Encoding::Json).await;
    client.subscribe("k").await;
    client.send(&msg::append("k", json!(1))).await;
    client.expect_push("k").await;
}

/// Room info and the WebTransport URL for `room`, with `token` on it.
async fn wt_target(server: &TestServer, room: &str, bearer: &str) -> (url::Url, Vec<Vec<u8>>) {
    let request = server.request(Method::GET, &format!("/room/{room}")).bearer_auth(bearer);
    let info = json_body(server.fetch(request).await, StatusCode::OK).await;
    (url(&info), hashes(&info))
}

async fn wt(server: &TestServer, room: &str, token: &str) -> Result<WtClient, String> {
    let (mut url, hashes) = wt_target(server, room, token).await;
    url.set_query(Some(&format!("token={token}")));
    WtClient::connect(url, &hashes).await.map_err(|e| e.to_string())
}

/// Sends `message` and returns what arrives before the pong of a ping sent after it.
async fn wt_round_trip(client: &mut WtClient, message: &ClientMessage) -> Vec<ServerMessage> {
    client.send(message).await;
    client.send(&ClientMessage::Ping { nonce: Some(99) }).await;
    let mut before = Vec::new();
    loop {
        match client.recv().await {
            ServerMessage::Pong { nonce: Some(99) } => return before,
            other => before.push(other),
        }
    }
}

fn error_text(messages: &[ServerMessage]) -> String {
    match messages {
        [ServerMessage::Error { message }] => message.clone(),
        other => panic!("expected one error, got {other:?}"),
    }
}

#[tokio::test]
async fn webtransport_refusals_capabilities_and_bearer() {
    let keys = KeyDir::new();
    let (key, public) = keys.key("ed1", KeyAlgorithm::EdDsa);
    let server = server_with_keys(&[&public]).await;
    let reader_token = token(&key, "r", &[Read], 60);
    let (bare, hashes) = wt_target(&server, "r", &reader_token).await;
    let refused = |url: url::Url| {
        let hashes = hashes.clone();
        async move { WtClient::connect(url, &hashes).await.err().expect("refused").to_string() }
    };
    assert!(refused(bare.clone()).await.contains("401"));
    let with = |token: &str| {
        let mut url = bare.clone();
        url.set_query(Some(&format!("token={token}")));
        url
    };
    assert!(refused(with("garbage")).await.contains("401"));
    assert!(refused(with(&token(&key, "r", &[Read], -5))).await.contains("401"));
    assert!(refused(with(&token(&key, "q", &[Read], 60))).await.contains("403"));

    let mut reader = wt(&server, "r", &reader_token).await.expect("reader session");
    let mut writer = wt(&server, "r", &token(&key, "r", &[Write, Volatile], 60)).await.expect("writer session");
    assert!(wt_round_trip(&mut reader, &get("k")).await.iter().all(|m| matches!(m, ServerMessage::Init { .. })));
    let refused_push = wt_round_trip(&mut reader, &push("k", Action::Append, json!(1))).await;
    assert_eq!(error_text(&refused_push), "the token lacks the `write` capability");
    assert!(error_text(&wt_round_trip(&mut writer, &get("k")).await).contains("`read`"));
    // A volatile datagram from the reader is refused on its control stream.
    reader.send_datagram(&volatile("cursor", json!(1)));
    assert!(matches!(reader.recv().await, ServerMessage::Error { message } if message.contains("`volatile`")));

    assert!(wt_round_trip(&mut writer, &push("k", Action::Append, json!(5))).await.is_empty());
    assert!(matches!(reader.recv().await, ServerMessage::Push { seq: 1, .. }));

    // The bearer header works on the CONNECT request as well.
    let client = web_transport_quinn::ClientBuilder::new().with_server_certificate_hashes(hashes.clone()).unwrap();
    let bearer = http::HeaderValue::from_str(&format!("Bearer {reader_token}")).unwrap();
    let request = web_transport_proto::ConnectRequest::new(bare).with_header(http::header::AUTHORIZATION, bearer);
    common::within("bearer session", client.connect(request)).await.expect("bearer session accepted");
}

fn get(key: &str) -> ClientMessage {
    wt_support::get(key, Replay::After(0))
}

#[tokio::test]
async fn webtransport_refresh_keeps_the_session_and_no_refresh_closes_it_with_4008() {
    let keys = KeyDir::new();
    let (key, public) = keys.key("hs1", KeyAlgorithm::Hs256);
    let server = server_with_keys(&[&public]).await;
    let mut refreshed = wt(&server, "r", &token(&key, "r", &[Read], 3)).await.unwrap();
    let lapsing = wt(&server, "r", &token(&key, "r", &[Read], 3)).await.unwrap();
    let fresh = ClientMessage::Auth { token: token(&key, "r", &[Read, Write], 60) };
    assert!(wt_round_trip(&mut refreshed, &fresh).await.is_empty());
    assert_eq!(lapsing.closed_code().await, Some(4008));
    let stored = wt_round_trip(&mut refreshed, &push("k", Action::Append, json!(1))).await;
    assert!(stored.is_empty(), "the refreshed token allows writes: {stored:?}");
}

#[tokio::test]
async fn tokens_never_reach_the_servers_log() {
    let keys = KeyDir::new();
    let (key, public) = keys.key("ed1", KeyAlgorithm::EdDsa);
    let log_path = keys.0.join("server.log");
    let log = std::fs::File::create(&log_path).unwrap();
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_driftdb"))
        .args(["serve", "--host", "127.0.0.1", "--port", "0", "--auth-key-file"])
        .arg(&public)
        .env("RUST_LOG", "debug")
        .stdout(std::process::Stdio::piped())
        .stderr(log)
        .spawn()
        .expect("driftdb starts");
    let addr = listening_addr(child.stdout.take().unwrap());

    let good = token(&key, "r", &[Read, Write], 60);
    let wrong_room = token(&key, "q", &[Read], 60);
    let expired = token(&key, "r", &[Read], -5);
    let client = reqwest::Client::builder().no_proxy().build().unwrap();
    for bearer in [&good, &wrong_room, &expired] {
        let _ = client.post(format!("http://{addr}/room/r/send")).bearer_auth(bearer).body("{}").send().await;
        let url = format!("ws://{addr}/room/r/connect?token={bearer}");
        if let Ok((mut socket, _)) = tokio_tungstenite::connect_async(url).await {
            use futures_util::SinkExt;
            let auth = json!({"type": "auth", "token": wrong_room}).to_string();
            let _ = socket.send(tokio_tungstenite::tungstenite::Message::text(auth)).await;
            let _ = socket.close(None).await;
        }
    }
    let info: Value =
        client.get(format!("http://{addr}/room/r")).bearer_auth(&good).send().await.unwrap().json().await.unwrap();
    let mut wt_url = url(&info);
    for bearer in [&good, &wrong_room] {
        wt_url.set_query(Some(&format!("token={bearer}")));
        let _ = WtClient::connect(wt_url.clone(), &hashes(&info)).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    child.kill().expect("stop the server");
    child.wait().unwrap();

    let log = std::fs::read_to_string(&log_path).unwrap();
    assert!(log.contains("WebTransport"), "the log was captured at debug level: {log}");
    for secret in [&good, &wrong_room, &expired] {
        // The signature part alone is enough to replay nothing, but no part of a token belongs in a log.
        let signature = secret.rsplit('.').next().unwrap();
        assert!(!log.contains(signature), "a token leaked into the log:\n{log}");
    }
}

/// Reads the binary's "listening on" line.
fn listening_addr(stdout: std::process::ChildStdout) -> String {
    use std::io::BufRead;
    let mut line = String::new();
    std::io::BufReader::new(stdout).read_line(&mut line).expect("the server prints its address");
    line.trim().rsplit("http://").next().expect("an address").to_owned()
}
