//! The engine's hot path by plain calls: one push applied under the room's lock and handed to every subscriber's
//! outbox, then every outbox drained (what the writer tasks do), for 1, 10, 100 and 1,000 subscribers.
//!
//! `cargo bench --bench engine`. Throughput is in deliveries (elements = subscribers).

use std::hint::black_box;
use std::sync::Arc;

use ciborium::value::Value as Cbor;
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use driftdb::engine::{Limits, Member, Outbox, Rooms};
use driftdb::outgoing::{Outgoing, WireFormat};
use driftdb::protocol::{Action, ClientMessage, Dialect, Replay, Value};

const SUBSCRIBERS: [usize; 4] = [1, 10, 100, 1000];

/// A cursor-like value, as a client would send it.
fn cursor() -> Value {
    Value::from_tree(Cbor::Map(vec![
        (Cbor::Text("x".into()), Cbor::Float(0.4321)),
        (Cbor::Text("y".into()), Cbor::Float(0.8765)),
        (Cbor::Text("client".into()), Cbor::Text("c7f3a9".into())),
    ]))
}

/// A room with `n` connections subscribed to `k`, and one publisher that is not subscribed.
struct Fixture {
    publisher: Member,
    subscribers: Vec<Member>,
    batch: Vec<Outgoing>,
}

impl Fixture {
    fn new(n: usize) -> Self {
        let limits = Limits { max_connections_per_room: n + 1, max_connections: n + 1, ..Limits::default() };
        let rooms = Rooms::new(limits);
        let room = rooms.create().expect("a room");
        let connect = || room.connect(Arc::new(Outbox::new(64 << 20)), false).expect("connects");
        let subscribers: Vec<Member> = (0..n).map(|_| connect()).collect();
        let mut batch = Vec::new();
        for subscriber in &subscribers {
            subscriber.handle(ClientMessage::Get { key: "k".into(), replay: Replay::After(0) });
            subscriber.outbox().try_batch(&mut batch, usize::MAX).expect("open");
        }
        batch.clear();
        Fixture { publisher: connect(), subscribers, batch }
    }

    /// Drains every subscriber's outbox, as its writer would; `format` also takes each one's wire bytes.
    fn drain(&mut self, format: Option<WireFormat>) {
        for subscriber in &self.subscribers {
            subscriber.outbox().try_batch(&mut self.batch, usize::MAX).expect("open");
            for message in self.batch.drain(..) {
                if let Some(format) = format {
                    black_box(message.encoded(format, Dialect::Extended));
                }
            }
        }
    }
}

fn fan_out(c: &mut Criterion) {
    let value = cursor();
    for (name, action, volatile) in
        [("relay", Action::Relay, false), ("volatile_relay", Action::Relay, true), ("replace", Action::Replace, false)]
    {
        let mut group = c.benchmark_group(format!("engine/{name}"));
        for n in SUBSCRIBERS {
            let mut fixture = Fixture::new(n);
            group.throughput(Throughput::Elements(n as u64));
            group.bench_function(BenchmarkId::from_parameter(n), |b| {
                b.iter(|| {
                    fixture.publisher.handle(ClientMessage::Push {
                        key: "k".into(),
                        value: value.clone(),
                        action,
                        volatile,
                    });
                    fixture.drain(None);
                })
            });
        }
        group.finish();
    }
    // The same with the bytes each writer sends: JSON encoded once per message however many subscribers get it.
    let mut group = c.benchmark_group("engine/relay_json_bytes");
    for n in SUBSCRIBERS {
        let mut fixture = Fixture::new(n);
        group.throughput(Throughput::Elements(n as u64));
        group.bench_function(BenchmarkId::from_parameter(n), |b| {
            b.iter(|| {
                // A fresh value per message, as when it was just decoded: its JSON text is not cached yet.
                let push =
                    ClientMessage::Push { key: "k".into(), value: cursor(), action: Action::Relay, volatile: false };
                fixture.publisher.handle(push);
                fixture.drain(Some(WireFormat::Json));
            })
        });
    }
    group.finish();
}

criterion_group!(benches, fan_out);
criterion_main!(benches);
