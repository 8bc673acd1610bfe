//! The demos and the room inspector, built into the binary (`build.rs` points at `js/demos/dist`, or at an empty
//! directory when the JS build was not done), so that a `driftdb` binary copied anywhere serves them.

use axum::body::Body;
use axum::extract::{Query, Request};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use rust_embed::RustEmbed;
use serde::Deserialize;

#[derive(RustEmbed)]
#[folder = "$DRIFTDB_EMBED_DIR"]
struct Demos;

/// Whether this binary was built with the demos.
pub fn has_demos() -> bool {
    Demos::get("index.html").is_some()
}

/// Serves the embedded file at the request's path (`/` is `index.html`).
pub async fn serve(request: Request) -> Response {
    let path = request.uri().path().trim_start_matches('/');
    let path = if path.is_empty() || path.ends_with('/') { format!("{path}index.html") } else { path.to_owned() };
    match Demos::get(&path) {
        Some(file) => file_response(&path, file, request.headers()),
        None if path == "index.html" => Html(NO_DEMOS_PAGE).into_response(),
        None => StatusCode::NOT_FOUND.into_response(),
    }
}

fn file_response(path: &str, file: rust_embed::EmbeddedFile, request_headers: &HeaderMap) -> Response {
    let etag = format!("\"{}\"", hex::encode(file.metadata.sha256_hash()));
    if request_headers.get(header::IF_NONE_MATCH).is_some_and(|tag| tag.as_bytes() == etag.as_bytes()) {
        return StatusCode::NOT_MODIFIED.into_response();
    }
    // Vite names the files under assets/ by their content hash: they never change. The page itself must be
    // revalidated so that a new binary's page (and its new asset names) is picked up.
    let cache = if path.starts_with("assets/") { "public, max-age=31536000, immutable" } else { "no-cache" };
    let mut response = Response::new(Body::from(file.data.into_owned()));
    let headers = response.headers_mut();
    let mime =
        HeaderValue::from_str(file.metadata.mimetype()).unwrap_or(HeaderValue::from_static("application/octet-stream"));
    headers.insert(header::CONTENT_TYPE, mime);
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static(cache));
    if let Ok(etag) = HeaderValue::from_str(&etag) {
        headers.insert(header::ETAG, etag);
    }
    response
}

/// What `/` says when the binary was built before the demos were.
const NO_DEMOS_PAGE: &str = r#"<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>DriftDB</title></head>
<body style="font-family: system-ui, sans-serif; max-width: 44rem; margin: 3rem auto; line-height: 1.5">
<h1>DriftDB is running</h1>
<p>This binary was built without the demos and the room inspector (their JavaScript build was not there). To get
them, build the demos and then the server, in the repository:</p>
<pre>cd js &amp;&amp; npm ci &amp;&amp; npm run build --workspace=driftdb-demos &amp;&amp; cd ..
cargo build --release</pre>
<p>or serve a build from disk with <code>driftdb serve --static-dir js/demos/dist</code>. The API works either way:
<code>curl -X POST http://HOST:PORT/new</code> creates a room.</p>
</body></html>
"#;

#[derive(Deserialize)]
pub struct InspectQuery {
    room: Option<String>,
}

/// `/inspect?room=ID`: the inspector is a page of the demo app, which takes its room from `?_driftdb_room=`.
pub async fn inspect(Query(query): Query<InspectQuery>) -> Redirect {
    let room = query.room.unwrap_or_default();
    let encoded: String = url_escape(&room);
    Redirect::to(&format!("/?_driftdb_room={encoded}#/inspect"))
}

/// Room ids are `A-Z a-z 0-9 - _`; anything else is percent-encoded so the redirect cannot be bent elsewhere.
fn url_escape(text: &str) -> String {
    text.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b == b'-' || b == b'_' {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    #[test]
    fn inspect_redirect_escapes_the_room() {
        assert_eq!(super::url_escape("ab-C_9"), "ab-C_9");
        assert_eq!(super::url_escape("a/b?c#d"), "a%2Fb%3Fc%23d");
    }
}
