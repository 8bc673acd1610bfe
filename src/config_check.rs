//! Checks every `driftdb serve` setting once, at start, so that a value no part of the server can work with is
//! refused with a message naming the option, instead of reaching a panic or a silent fallback later.

use crate::config::ServerConfig;
use crate::storage::StorageKind;

/// Longest accepted timeout: far beyond any real use, and small enough that deadlines computed from it never
/// overflow a clock.
const MAX_TIMEOUT_MS: u64 = 24 * 60 * 60 * 1000;

/// A setting the server cannot run with.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("invalid --{option}: {problem}")]
pub struct InvalidSetting {
    /// The command-line option, without its dashes.
    pub option: &'static str,
    pub problem: String,
}

impl ServerConfig {
    /// Refuses settings that no part of the server can work with. Rate limits keep 0 as their documented "off".
    pub fn validate(&self) -> Result<(), InvalidSetting> {
        let limits = &self.limits;
        at_least_one("max-message-bytes", self.max_message_bytes as u64)?;
        at_least_one("outbox-bytes", self.outbox_bytes as u64)?;
        at_least_one("write-budget-bytes", self.write_budget_bytes as u64)?;
        if let Some(threads) = self.worker_threads {
            at_least_one("worker-threads", threads as u64)?;
        }
        at_least_one("max-keys-per-room", limits.max_keys_per_room as u64)?;
        at_least_one("max-room-bytes", limits.max_room_bytes as u64)?;
        at_least_one("max-connections-per-room", limits.max_connections_per_room as u64)?;
        at_least_one("max-connections", limits.max_connections as u64)?;
        at_least_one("max-rooms", limits.max_rooms as u64)?;
        at_least_one("room-ttl-secs", limits.room_ttl_secs)?;
        timeout("idle-timeout-ms", limits.idle_timeout_ms)?;
        timeout("wt-idle-timeout-ms", self.wt_idle_timeout_ms)?;
        at_least_one("udp-receive-buffer-bytes", self.udp_receive_buffer_bytes as u64)?;
        at_least_one("max-http-connections", limits.max_http_connections as u64)?;
        timeout("http-header-timeout-ms", limits.http_header_timeout_ms)?;
        timeout("http-body-timeout-ms", limits.http_body_timeout_ms)?;
        timeout("write-stall-timeout-ms", limits.write_stall_timeout_ms)?;
        if let Some(url) = &self.public_url
            && !["http://", "https://"].iter().any(|scheme| url.starts_with(scheme))
        {
            return Err(InvalidSetting {
                option: "public-url",
                problem: format!("`{url}` must start with http:// or https://"),
            });
        }
        self.check_cluster()
    }

    /// A node id goes into NATS subjects and KV keys; the URL other nodes hand out must be one clients can reach.
    fn check_cluster(&self) -> Result<(), InvalidSetting> {
        if self.cluster.nats_url.is_none() {
            if self.storage == StorageKind::Jetstream {
                return Err(InvalidSetting {
                    option: "storage",
                    problem: "`jetstream` keeps rooms in the cluster's NATS: it needs --cluster".into(),
                });
            }
            return Ok(());
        }
        if self.storage == StorageKind::Embedded {
            return Err(InvalidSetting {
                option: "storage",
                problem: "a cluster node must keep rooms where every node can read them, so that another can take \
                          a room over: use --storage jetstream (or memory)"
                    .into(),
            });
        }
        if let Some(id) = &self.cluster.node_id
            && crate::engine::RoomId::parse(id).is_err()
        {
            return Err(InvalidSetting {
                option: "node-id",
                problem: format!("`{id}`: use 1 to 64 characters from A-Z, a-z, 0-9, '-' and '_'"),
            });
        }
        if self.public_url.is_none() && self.host.is_unspecified() {
            return Err(InvalidSetting {
                option: "public-url",
                problem: format!(
                    "with --cluster and --host {} other nodes need the URL clients reach this one at",
                    self.host
                ),
            });
        }
        Ok(())
    }
}

fn at_least_one(option: &'static str, value: u64) -> Result<(), InvalidSetting> {
    if value == 0 {
        return Err(InvalidSetting { option, problem: "must be at least 1 (0 would refuse every client)".into() });
    }
    Ok(())
}

fn timeout(option: &'static str, millis: u64) -> Result<(), InvalidSetting> {
    if !(1..=MAX_TIMEOUT_MS).contains(&millis) {
        return Err(InvalidSetting {
            option,
            problem: format!("{millis} ms is not between 1 and {MAX_TIMEOUT_MS} ms"),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_zeroes_are_named() {
        let with = |tweak: fn(&mut ServerConfig)| {
            let mut config = ServerConfig::default();
            tweak(&mut config);
            config.validate()
        };
        assert_eq!(ServerConfig::default().validate(), Ok(()));
        let error = with(|c| c.limits.idle_timeout_ms = 0).unwrap_err();
        assert_eq!(error.to_string(), "invalid --idle-timeout-ms: 0 ms is not between 1 and 86400000 ms");
        assert_eq!(with(|c| c.outbox_bytes = 0).unwrap_err().option, "outbox-bytes");
        assert_eq!(with(|c| c.public_url = Some("db.example.com".into())).unwrap_err().option, "public-url");
        fn cluster(c: &mut ServerConfig) {
            c.cluster.nats_url = Some("nats://127.0.0.1:4222".into());
            c.storage = StorageKind::Jetstream;
        }
        assert_eq!(with(cluster), Ok(()));
        let bad_id = with(|c| {
            cluster(c);
            c.cluster.node_id = Some("a.b".into());
        });
        assert_eq!(bad_id.unwrap_err().option, "node-id");
        let any_host = with(|c| {
            cluster(c);
            c.host = [0, 0, 0, 0].into();
        });
        assert_eq!(any_host.unwrap_err().option, "public-url");
        let local_store = with(|c| {
            cluster(c);
            c.storage = StorageKind::Embedded;
        });
        assert!(local_store.unwrap_err().problem.contains("--storage jetstream"));
        assert_eq!(with(|c| c.storage = StorageKind::Jetstream).unwrap_err().option, "storage");
        let config = with(|c| c.limits.max_messages_per_second = 0);
        assert_eq!(config, Ok(()), "0 turns a rate limit off");
    }
}
