//! What auth costs: verifying a token on the accept path (EdDSA and HS256), and the per-message capability check a
//! connection with tokens on pays before the engine sees a message.
//!
//! `cargo bench --bench auth`.

use std::hint::black_box;
use std::path::PathBuf;
use std::sync::Arc;

use criterion::{Criterion, criterion_group, criterion_main};
use driftdb::auth::keys::{self, KeyAlgorithm, SigningKeyFile};
use driftdb::auth::{self, Access, Auth, Capability, Claims, RoomPattern};
use driftdb::config::AuthConfig;
use driftdb::engine::RoomId;
use driftdb::protocol::{Action, ClientMessage, Value};

/// Writes a fresh key of `algorithm` into `dir`; returns its signing key and the file the server verifies with.
fn key(dir: &std::path::Path, kid: &str, algorithm: KeyAlgorithm) -> (SigningKeyFile, PathBuf) {
    let (signing, verifying) = keys::generate(kid, algorithm);
    let verifying_path = dir.join(format!("{kid}.verify.jwk"));
    keys::write_jwk(&verifying_path, &verifying).expect("write key");
    (SigningKeyFile::from_jwk(&signing).expect("signing key"), verifying_path)
}

fn token(key: &SigningKeyFile) -> String {
    let claims = Claims {
        exp: auth::now_secs() + 3600,
        nbf: None,
        room: RoomPattern::parse("game-*"),
        can: vec![Capability::Read, Capability::Write],
        sub: Some("player-1".into()),
        aud: None,
    };
    auth::issue(key, &claims)
}

fn bench(c: &mut Criterion) {
    let dir = std::env::temp_dir().join(format!("driftdb-auth-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let (ed, ed_file) = key(&dir, "ed", KeyAlgorithm::EdDsa);
    let (hs, hs_file) = key(&dir, "hs", KeyAlgorithm::Hs256);
    let config = AuthConfig { auth_key_files: vec![ed_file, hs_file], ..Default::default() };
    let server = Arc::new(Auth::load(&config).expect("keys load"));
    std::fs::remove_dir_all(&dir).expect("temp dir removed");
    let room = RoomId::parse("game-1").unwrap();

    for (name, key) in [("admit_eddsa", &ed), ("admit_hs256", &hs)] {
        let token = token(key);
        c.bench_function(name, |b| b.iter(|| server.admit(black_box(Some(&token)), &room, false).unwrap()));
    }

    let grant = server.admit(Some(&token(&ed)), &room, false).unwrap();
    let access = Access::new(server, room, false, grant);
    let push = ClientMessage::Push {
        key: "k".into(),
        value: Value::from_tree(ciborium::Value::Integer(1.into())),
        action: Action::Append,
        volatile: false,
    };
    c.bench_function("check_message", |b| b.iter(|| access.check(black_box(&push)).unwrap()));
}

criterion_group!(benches, bench);
criterion_main!(benches);
