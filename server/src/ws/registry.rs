//! The live WebSocket connections of this node, so they can be closed together: all of them at
//! shutdown, or those of one token when it is revoked; and the per-token connection count, so
//! that one token cannot hold more sockets than the configured limit.

use std::sync::{Arc, Weak};

use dashmap::DashMap;
use gantry_projections::{CloseReason, Outbox};

#[derive(Default)]
pub struct Connections {
    live: DashMap<u64, (String, Weak<Outbox>)>,
    /// token id -> connections counted against it (reserved at upgrade, released at close).
    per_token: Arc<DashMap<String, usize>>,
}

/// One connection counted against a token, from the upgrade until the socket closes.
pub struct Slot {
    per_token: Arc<DashMap<String, usize>>,
    token_id: String,
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.per_token.remove_if_mut(&self.token_id, |_, count| {
            *count = count.saturating_sub(1);
            *count == 0
        });
    }
}

impl Connections {
    /// Counts one more connection for `token_id`, unless it already has `limit` (0: no limit).
    pub fn reserve(&self, token_id: &str, limit: usize) -> Option<Slot> {
        let mut count = self.per_token.entry(token_id.to_owned()).or_insert(0);
        if limit > 0 && *count >= limit {
            return None;
        }
        *count += 1;
        Some(Slot {
            per_token: self.per_token.clone(),
            token_id: token_id.to_owned(),
        })
    }

    pub fn add(&self, token_id: &str, outbox: &Arc<Outbox>) {
        self.live
            .insert(outbox.id(), (token_id.to_owned(), Arc::downgrade(outbox)));
    }

    pub fn remove(&self, outbox: &Outbox) {
        self.live.remove(&outbox.id());
    }

    pub fn count(&self) -> usize {
        self.live.len()
    }

    pub fn count_for_token(&self, token_id: &str) -> usize {
        self.live
            .iter()
            .filter(|entry| entry.value().0 == token_id)
            .count()
    }

    pub fn close_all(&self, reason: CloseReason) {
        for entry in self.live.iter() {
            if let Some(outbox) = entry.value().1.upgrade() {
                outbox.close(reason);
            }
        }
    }

    pub fn close_token(&self, token_id: &str, reason: CloseReason) {
        for entry in self.live.iter().filter(|entry| entry.value().0 == token_id) {
            if let Some(outbox) = entry.value().1.upgrade() {
                outbox.close(reason);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_are_counted_per_token_and_released_on_drop() {
        let connections = Connections::default();
        let a1 = connections.reserve("a", 2).unwrap();
        let _a2 = connections.reserve("a", 2).unwrap();
        assert!(connections.reserve("a", 2).is_none());
        let _b = connections.reserve("b", 2).unwrap();
        drop(a1);
        let _a3 = connections.reserve("a", 2).unwrap();
        assert!(connections.reserve("a", 0).is_some(), "0 means no limit");
    }
}
