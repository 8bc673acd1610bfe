//! Validating a session request before it is accepted.
//!
//! h3-webtransport 0.1.2 answers 400 to a request it will not take yet still reports success, so everything is
//! checked here first and refused with our own status.

use h3::ext::Protocol;
use http::{Method, Request, StatusCode};

use crate::engine::RoomId;

/// What a valid session request asks for.
#[derive(Debug, PartialEq, Eq)]
pub struct Target {
    pub room: RoomId,
    pub debug: bool,
}

/// Why a request is refused, with the status to answer.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("not an extended CONNECT with :protocol webtransport")]
    NotWebTransport,
    #[error("no such path")]
    NotFound,
    #[error("malformed room id")]
    BadRoomId,
}

impl Refusal {
    pub fn status(&self) -> StatusCode {
        match self {
            Refusal::NotWebTransport => StatusCode::BAD_REQUEST,
            Refusal::NotFound => StatusCode::NOT_FOUND,
            Refusal::BadRoomId => StatusCode::BAD_REQUEST,
        }
    }
}

/// Checks method, `:protocol` and path (`/room/{id}/connect`, optional `?debug=true`).
pub fn validate(request: &Request<()>) -> Result<Target, Refusal> {
    let is_webtransport = request.method() == Method::CONNECT
        && request.extensions().get::<Protocol>().is_some_and(|p| *p == Protocol::WEB_TRANSPORT);
    if !is_webtransport {
        return Err(Refusal::NotWebTransport);
    }
    let uri = request.uri();
    let id = uri
        .path()
        .strip_prefix("/room/")
        .and_then(|rest| rest.strip_suffix("/connect"))
        .filter(|id| !id.contains('/'))
        .ok_or(Refusal::NotFound)?;
    let room = RoomId::parse(id).map_err(|_| Refusal::BadRoomId)?;
    Ok(Target { room, debug: debug_flag(uri.query()) })
}

/// `debug=true` among the query parameters.
fn debug_flag(query: Option<&str>) -> bool {
    query.unwrap_or_default().split(['&', '?']).any(|pair| pair == "debug=true")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn connect(uri: &str) -> Request<()> {
        let mut request = Request::builder().method(Method::CONNECT).uri(uri).body(()).unwrap();
        request.extensions_mut().insert(Protocol::WEB_TRANSPORT);
        request
    }

    #[test]
    fn accepts_room_paths_only() {
        let target = validate(&connect("https://h:1/room/abc/connect?debug=true")).unwrap();
        assert_eq!(target, Target { room: RoomId::parse("abc").unwrap(), debug: true });
        assert!(!validate(&connect("https://h:1/room/abc/connect")).unwrap().debug);
        assert_eq!(validate(&connect("https://h:1/room/a%20b/connect")), Err(Refusal::BadRoomId));
        assert_eq!(validate(&connect("https://h:1/room//connect")), Err(Refusal::BadRoomId));
        assert_eq!(validate(&connect("https://h:1/rooms/abc/connect")), Err(Refusal::NotFound));
        assert_eq!(validate(&connect("https://h:1/room/a/b/connect")), Err(Refusal::NotFound));
    }

    #[test]
    fn refuses_plain_requests() {
        let get = Request::builder().uri("https://h:1/room/abc/connect").body(()).unwrap();
        assert_eq!(validate(&get), Err(Refusal::NotWebTransport));
        let mut plain_connect = connect("https://h:1/room/abc/connect");
        plain_connect.extensions_mut().remove::<Protocol>();
        assert_eq!(validate(&plain_connect), Err(Refusal::NotWebTransport));
    }
}
