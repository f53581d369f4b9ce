//! The projector: feeds the change log, in position order, into the projection hub.
//!
//! It is woken by commits (the store's commit watch, or on PostgreSQL a notification); a slow
//! poll is only the fallback. It starts from one consistent read of every row, so the hub's views
//! and the log agree, and it keeps the retained tail so clients resume across restarts.

use std::sync::Arc;
use std::time::Duration;

use gantry_projections::{Change, Hub, HubConfig, TopicSeed};
use tokio_util::sync::CancellationToken;
use tracing::{debug, warn};

use crate::storage::{StorageError, StorageResult, Store, StoredChange, TopicKey};

/// How the hub retains diffs for resume, and bounds each connection.
#[derive(Clone, Debug)]
pub struct ProjectionConfig {
    pub retention_count: usize,
    pub retention_age: Duration,
    pub outbox_max_bytes: usize,
    pub max_subscriptions_per_connection: usize,
    /// The fallback poll when no commit woke the projector.
    pub poll_interval: Duration,
}

impl Default for ProjectionConfig {
    fn default() -> Self {
        ProjectionConfig {
            retention_count: gantry_projections::DEFAULT_RETENTION_COUNT,
            retention_age: gantry_projections::DEFAULT_RETENTION_AGE,
            outbox_max_bytes: gantry_projections::DEFAULT_OUTBOX_MAX_BYTES,
            max_subscriptions_per_connection:
                gantry_projections::DEFAULT_MAX_SUBSCRIPTIONS_PER_CONNECTION,
            poll_interval: Duration::from_secs(1),
        }
    }
}

const BATCH: u32 = 2000;

/// How soon a failed read of the log (database unreachable) is retried.
const RETRY_AFTER_ERROR: Duration = Duration::from_millis(200);

fn change(stored: StoredChange) -> Change {
    Change {
        position: stored.position,
        topic: stored.topic,
        committed_at: stored.committed_at,
        ops: stored.ops,
    }
}

/// Builds a hub loaded with the current state of the store.
pub async fn load_hub(store: &Store, config: &ProjectionConfig) -> StorageResult<Arc<Hub>> {
    let epoch = store.epoch().await?;
    let mut hub_config = HubConfig::new(epoch);
    hub_config.retention_count = config.retention_count;
    hub_config.retention_age = config.retention_age;
    hub_config.outbox_max_bytes = config.outbox_max_bytes;
    hub_config.max_subscriptions_per_connection = config.max_subscriptions_per_connection;
    hub_config.wire_topic = Arc::new(TopicKey::wire_name);
    let hub = Hub::new(hub_config);
    let retain = u32::try_from(config.retention_count.saturating_mul(4)).unwrap_or(u32::MAX);
    let seed = store.projection_seed(retain).await?;
    let views = seed
        .topics
        .into_iter()
        .map(|t| TopicSeed {
            topic: t.topic,
            position: t.position,
            rows: t.rows,
        })
        .collect();
    hub.load(
        seed.position,
        views,
        seed.retained.into_iter().map(change).collect(),
    )
    .map_err(|e| StorageError::Corrupt(format!("loading projections: {e}")))?;
    Ok(hub)
}

/// Tails the change log into the hub until `stop` fires.
pub async fn run(store: Store, hub: Arc<Hub>, config: ProjectionConfig, stop: CancellationToken) {
    let mut commits = store.commits();
    let mut expire = tokio::time::interval(Duration::from_secs(30));
    loop {
        match catch_up(&store, &hub).await {
            Ok(applied) if applied > 0 => {
                debug!(applied, position = hub.position(), "projected changes")
            }
            Ok(_) => {}
            Err(error) => {
                // Retry soon rather than at the next wake-up: the commit that woke us may have
                // been the last one for a while.
                warn!(%error, "reading the change log failed; retrying");
                tokio::select! {
                    () = tokio::time::sleep(RETRY_AFTER_ERROR) => continue,
                    () = stop.cancelled() => return,
                }
            }
        }
        tokio::select! {
            changed = commits.changed() => {
                if changed.is_err() {
                    // The store is gone; keep polling until stopped.
                    tokio::time::sleep(config.poll_interval).await;
                }
            }
            () = tokio::time::sleep(config.poll_interval) => {}
            _ = expire.tick() => { hub.expire(); }
            () = stop.cancelled() => return,
        }
    }
}

async fn catch_up(store: &Store, hub: &Hub) -> StorageResult<usize> {
    let mut applied = 0;
    loop {
        let batch = store.changes_after(hub.position(), BATCH).await?;
        let count = batch.len();
        applied += count;
        hub.apply(batch.into_iter().map(change));
        if count < BATCH as usize {
            return Ok(applied);
        }
    }
}
