//! The sweeper: deletes the instances that missed their heartbeat deadline within a
//! second of their death, so that their seats show as free in every listing. Every
//! process runs one; on PostgreSQL they share the work without waiting on each other.
//! Now and then it also deletes the console's sessions that have been idle too long.

use std::sync::{Arc, Weak};
use std::time::Duration;

use crate::domain::time::Timestamp;
use crate::storage::Store;

/// How often the sweeper looks: well within the second a dead instance may linger.
const TICK: Duration = Duration::from_millis(250);
/// How often idle console sessions are deleted (an idle one is refused already).
const FORGET_SESSIONS_EVERY: Duration = Duration::from_secs(600);

/// Starts the sweeper; it stops once the store is dropped.
pub fn spawn(store: Weak<dyn Store>) {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(TICK);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut failing = false;
        let mut sessions_forgotten = tokio::time::Instant::now();
        loop {
            tick.tick().await;
            let Some(store) = store.upgrade() else { return };
            failing = sweep_once(&store, failing).await;
            if sessions_forgotten.elapsed() >= FORGET_SESSIONS_EVERY {
                sessions_forgotten = tokio::time::Instant::now();
                let idle = crate::domain::console::idle_since(Timestamp::now());
                if let Err(error) = store.forget_sessions(idle).await {
                    tracing::warn!(%error, "idle console sessions could not be deleted");
                }
            }
        }
    });
}

/// One sweep; whether it failed. A failure is logged once until a sweep succeeds again:
/// an unavailable database is already reported by every request.
async fn sweep_once(store: &Arc<dyn Store>, was_failing: bool) -> bool {
    match store.sweep(Timestamp::now()).await {
        Ok(swept) => {
            if swept > 0 {
                tracing::debug!(swept, "deleted instances that missed their heartbeat");
            }
            if was_failing {
                tracing::info!("the heartbeat sweeper works again");
            }
            false
        }
        Err(error) => {
            if !was_failing {
                tracing::warn!(%error, "the heartbeat sweeper failed; it will retry");
            }
            true
        }
    }
}
