//! Where a room should live: rendezvous (highest-random-weight) hashing of the room id over the live node ids.
//!
//! Every node computes the same order from the same membership, with no coordination, and a node joining or leaving
//! moves only the rooms it wins or held (about 1/n of them), unlike `hash % n`. The order is only a preference: the
//! lease decides who owns a room, so two nodes that briefly see different memberships cannot both own it.

use sha2::{Digest, Sha256};

/// The weight of `node` for `room`: the first 8 bytes of SHA-256 over both, so it is the same on every machine and
/// build (the standard library's hasher is randomly keyed per process).
fn weight(node: &str, room: &str) -> u64 {
    let mut hasher = Sha256::new();
    hasher.update(node.as_bytes());
    // A separator, so that ("ab", "c") and ("a", "bc") weigh differently.
    hasher.update([0]);
    hasher.update(room.as_bytes());
    let digest = hasher.finalize();
    u64::from_be_bytes(digest[..8].try_into().expect("SHA-256 has 32 bytes"))
}

/// The nodes in order of preference for `room`: the first is its preferred owner, the next takes over when the
/// first is gone. Ties (astronomically rare) fall back on the id, so the order is total.
pub fn ranked<'a>(room: &str, nodes: impl IntoIterator<Item = &'a str>) -> Vec<&'a str> {
    let mut weighted: Vec<(u64, &str)> = nodes.into_iter().map(|node| (weight(node, room), node)).collect();
    weighted.sort_unstable_by(|a, b| b.cmp(a));
    weighted.dedup_by_key(|(_, node)| *node);
    weighted.into_iter().map(|(_, node)| node).collect()
}

/// One of `stripes` buckets for `room`, to spread per-room locks over a fixed set.
pub fn stripe(room: &str, stripes: usize) -> usize {
    (weight("", room) % stripes as u64) as usize
}

#[cfg(test)]
mod tests {
    use super::*;

    const NODES: [&str; 3] = ["node-a", "node-b", "node-c"];

    #[test]
    fn the_order_does_not_depend_on_the_listing_order() {
        let reversed: Vec<&str> = NODES.iter().rev().copied().collect();
        for room in ["r1", "r2", "some-room"] {
            assert_eq!(ranked(room, NODES), ranked(room, reversed.iter().copied()));
            assert_eq!(ranked(room, NODES).len(), 3);
        }
    }

    #[test]
    fn rooms_spread_over_every_node() {
        let mut wins = [0usize; 3];
        for n in 0..3000 {
            let first = ranked(&format!("room-{n}"), NODES)[0];
            wins[NODES.iter().position(|node| *node == first).unwrap()] += 1;
        }
        assert!(wins.iter().all(|&w| (800..1200).contains(&w)), "uneven spread: {wins:?}");
    }

    #[test]
    fn a_leaving_node_moves_only_its_own_rooms() {
        for n in 0..500 {
            let room = format!("room-{n}");
            let before = ranked(&room, NODES);
            let after = ranked(&room, ["node-a", "node-c"]);
            if before[0] != "node-b" {
                assert_eq!(before[0], after[0], "{room} moved although its owner stayed");
            } else {
                assert_eq!(before[1], after[0], "{room} goes to its second choice");
            }
        }
    }
}
