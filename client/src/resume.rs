//! Resuming subscriptions after a reconnect: the newest seq seen per key, so that a new connection asks only for
//! what it missed (`get` with `seq`), and the room epoch, whose change means the stored streams were lost (a room
//! recreated after expiry or a restart without durability) and everything must be read again from the start.

use std::collections::HashMap;

use driftdb_protocol::Replay;

/// What a client has seen, per key.
#[derive(Clone, Debug, Default)]
pub struct Resume {
    last_seq: HashMap<String, u64>,
    epoch: Option<String>,
}

impl Resume {
    pub fn new() -> Self {
        Self::default()
    }

    /// Records that `seq` of `key` arrived; returns the newest seq seen before it (0 for none), so a caller can tell
    /// an out-of-order delivery (`seq` below it).
    pub fn observe(&mut self, key: &str, seq: u64) -> u64 {
        let last = match self.last_seq.get_mut(key) {
            Some(last) => last,
            None => self.last_seq.entry(key.to_owned()).or_insert(0),
        };
        let before = *last;
        *last = before.max(seq);
        before
    }

    /// The newest seq seen of `key` (0 for none).
    pub fn last(&self, key: &str) -> u64 {
        self.last_seq.get(key).copied().unwrap_or(0)
    }

    /// Where a resubscription of `key` starts: after the newest seq seen.
    pub fn replay(&self, key: &str) -> Replay {
        Replay::After(self.last(key))
    }

    /// Records the epoch of an `init`. A different epoch than before forgets every seq (the room's streams started
    /// again) and returns true; the first epoch seen, or the reference dialect's empty one, changes nothing.
    pub fn observe_epoch(&mut self, epoch: &str) -> bool {
        if epoch.is_empty() {
            return false;
        }
        let changed = self.epoch.as_deref().is_some_and(|old| old != epoch);
        if changed {
            self.last_seq.clear();
        }
        self.epoch = Some(epoch.to_owned());
        changed
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resumes_after_the_newest_seq_until_the_epoch_changes() {
        let mut resume = Resume::new();
        assert_eq!(resume.replay("log"), Replay::After(0));
        assert_eq!(resume.observe("log", 3), 0);
        assert_eq!(resume.observe("log", 2), 3, "an older seq does not move it back");
        assert_eq!(resume.replay("log"), Replay::After(3));
        assert!(!resume.observe_epoch("e1"));
        assert!(!resume.observe_epoch(""));
        assert!(!resume.observe_epoch("e1"));
        assert!(resume.observe_epoch("e2"));
        assert_eq!(resume.replay("log"), Replay::After(0));
    }
}
