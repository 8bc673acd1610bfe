//! The HTTP API over real sockets: room creation and info, method and id checks, CORS, health and `send` errors.

mod common;

use common::{TestServer, json_body, msg};
use reqwest::header::{HOST, HeaderMap};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

/// Checks the URLs of a room info object for a server reached as `http://{host}`.
fn assert_room_urls(info: &Value, host: &str) {
    let room = info["room"].as_str().unwrap_or_else(|| panic!("no room id in {info}"));
    assert_eq!(info["socket_url"], format!("ws://{host}/room/{room}/connect"), "{info}");
    assert_eq!(info["http_url"], format!("http://{host}/room/{room}/send"), "{info}");
}

fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).map(|v| v.to_str().expect("ASCII header value"))
}

#[tokio::test]
async fn post_new_creates_a_room_with_urls_for_the_requests_host() {
    let server = TestServer::start().await;
    let info = server.create_room_info().await;
    assert_room_urls(&info, &server.addr().to_string());
    let room = info["room"].as_str().unwrap();
    assert!(room.len() >= 22, "a room id carries at least 128 bits: {room:?}");
    assert!(server.has_room(room));
    assert_ne!(server.create_room().await, room, "every POST /new makes a new room");

    // The URLs follow the Host the client used, not the address the server bound.
    let request = server.request(Method::POST, "/new").header(HOST, "drift.example:8443");
    let info = json_body(server.fetch(request).await, StatusCode::OK).await;
    assert_room_urls(&info, "drift.example:8443");
}

#[tokio::test]
async fn get_room_returns_its_info_and_creates_an_unknown_well_formed_room() {
    let server = TestServer::start().await;
    let room = server.create_room().await;
    let info = json_body(server.get(&format!("/room/{room}")).await, StatusCode::OK).await;
    assert_eq!(info["room"], room);
    assert_room_urls(&info, &server.addr().to_string());

    // A shared URL keeps working after a restart: an unknown but well-formed id is created on the spot.
    let unknown = "after-a-restart_1";
    assert!(!server.has_room(unknown));
    let info = json_body(server.get(&format!("/room/{unknown}")).await, StatusCode::OK).await;
    assert_eq!(info["room"], unknown);
    assert!(server.has_room(unknown));
}

#[tokio::test]
async fn malformed_room_ids_get_400_on_info_and_send() {
    let server = TestServer::start().await;
    let too_long = "a".repeat(65);
    for id in ["bad.id", "bad%20id", "%C3%A9", too_long.as_str()] {
        let response = server.get(&format!("/room/{id}")).await;
        let error = json_body(response, StatusCode::BAD_REQUEST).await;
        assert_eq!(error["type"], "error", "GET /room/{id}: {error}");
        let response = server.post(&format!("/room/{id}/send"), msg::ping(1).to_string()).await;
        let error = json_body(response, StatusCode::BAD_REQUEST).await;
        assert_eq!(error["type"], "error", "POST /room/{id}/send: {error}");
    }
    assert!(server.rooms().is_empty(), "a malformed id must not create a room");
}

#[tokio::test]
async fn send_rejects_bad_messages_with_400_and_an_error() {
    let server = TestServer::start().await;
    let room = server.create_room().await;
    let bad = [
        ("{\"type\": \"ping\"", "JSON"),
        (r#"{"type": "bogus"}"#, "bogus"),
        (r#"{"type":"push","key":"k","action":{"type":"relay"}}"#, "value"),
        (r#"{"type":"push","key":"k","value":1,"action":{"type":"compact","seq":99}}"#, "ahead"),
    ];
    for (body, hint) in bad {
        let error = json_body(server.post(&format!("/room/{room}/send"), body).await, StatusCode::BAD_REQUEST).await;
        let text = error["message"].as_str().unwrap_or_else(|| panic!("error without a message: {error}"));
        assert!(text.contains(hint), "{body}: {text:?} does not mention {hint:?}");
    }
    // Nothing was applied.
    assert_eq!(server.send(&room, &msg::get("k", json!(0))).await["data"], json!([]));
}

#[tokio::test]
async fn send_body_over_the_message_limit_gets_413() {
    let server = TestServer::start_with(|config| config.max_message_bytes = 1024).await;
    let room = server.create_room().await;
    let response = server.post(&format!("/room/{room}/send"), msg::relay_text_of_len("k", 1025)).await;
    assert_eq!(response.status(), StatusCode::PAYLOAD_TOO_LARGE);
    // A body of exactly the limit is accepted.
    let response = server.post(&format!("/room/{room}/send"), msg::relay_text_of_len("k", 1024)).await;
    assert_eq!(json_body(response, StatusCode::OK).await, Value::Null);
    assert_eq!(server.send(&room, &msg::ping(1)).await, json!({"type": "pong", "nonce": 1}));
}

#[tokio::test]
async fn get_new_is_method_not_allowed() {
    let server = TestServer::start().await;
    assert_eq!(server.get("/new").await.status(), StatusCode::METHOD_NOT_ALLOWED);
    assert!(server.rooms().is_empty());
}

#[tokio::test]
async fn cors_preflight_and_responses_allow_any_origin() {
    let server = TestServer::start().await;
    for path in ["/new", "/room/some-room/send"] {
        let preflight = server
            .request(Method::OPTIONS, path)
            .header("Origin", "https://app.example")
            .header("Access-Control-Request-Method", "POST")
            .header("Access-Control-Request-Headers", "content-type");
        let response = server.fetch(preflight).await;
        assert!(response.status().is_success(), "preflight of {path}: {}", response.status());
        let headers = response.headers();
        assert_eq!(header(headers, "access-control-allow-origin"), Some("*"), "preflight of {path}");
        let methods = header(headers, "access-control-allow-methods").unwrap_or_default();
        assert!(methods == "*" || methods.contains("POST"), "allowed methods of {path}: {methods:?}");
        let allowed_headers = header(headers, "access-control-allow-headers").unwrap_or_default();
        assert!(
            allowed_headers == "*" || allowed_headers.to_ascii_lowercase().contains("content-type"),
            "allowed headers of {path}: {allowed_headers:?}"
        );
    }
    let request = server.request(Method::POST, "/new").header("Origin", "https://app.example");
    let response = server.fetch(request).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(header(response.headers(), "access-control-allow-origin"), Some("*"), "actual request");
}

#[tokio::test]
async fn healthz_answers_ok() {
    let server = TestServer::start().await;
    let response = server.get("/healthz").await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.text().await.expect("body"), "ok");
}
