//! The live WebSocket connections of this node, so they can be closed together: all of them at
//! shutdown, or those of one token when it is revoked.

use std::sync::{Arc, Weak};

use dashmap::DashMap;
use gantry_projections::{CloseReason, Outbox};

#[derive(Default)]
pub struct Connections {
    live: DashMap<u64, (String, Weak<Outbox>)>,
}

impl Connections {
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
