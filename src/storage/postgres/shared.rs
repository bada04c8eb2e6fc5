//! The connections that point reads share, pipelined.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use deadpool_postgres::Object;

/// Connections taken from the pool for good and shared by point reads. Statements that
/// callers send at once on one `tokio-postgres` client are pipelined: they go out
/// together and PostgreSQL answers them in turn, so one wake-up of its backend serves
/// many requests instead of one. Only short statements ride them, because a statement
/// waits for those ahead of it on its connection. A statement still runs in its own
/// transaction and sees everything committed before it started.
pub(super) struct SharedConnections {
    slots: Vec<SharedSlot>,
    next: AtomicUsize,
}

/// One shared connection, opened at first use.
#[derive(Default)]
pub(super) struct SharedSlot(Mutex<Option<Arc<Object>>>);

/// Connections shared by point reads: one per four in the pool, at most two.
const SHARED_PER_POOL: u32 = 4;
const MAX_SHARED: u32 = 2;

impl SharedConnections {
    pub(super) fn new(pool_size: u32) -> Self {
        let count = (pool_size / SHARED_PER_POOL).min(MAX_SHARED);
        Self {
            slots: (0..count).map(|_| SharedSlot::default()).collect(),
            next: AtomicUsize::new(0),
        }
    }

    /// How many of the shared connections are open.
    pub(super) fn open(&self) -> usize {
        self.slots
            .iter()
            .filter(|slot| slot.get().is_some())
            .count()
    }

    /// The next slot in turn, or `None` if the pool is too small to share.
    pub(super) fn next(&self) -> Option<&SharedSlot> {
        if self.slots.is_empty() {
            return None;
        }
        let turn = self.next.fetch_add(1, Ordering::Relaxed);
        self.slots.get(turn % self.slots.len())
    }
}

impl SharedSlot {
    pub(super) fn get(&self) -> Option<Arc<Object>> {
        let slot = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        slot.as_ref().filter(|conn| !conn.is_closed()).cloned()
    }

    /// Callers holding the connection it replaces keep it until they finish; then it goes
    /// back to the pool, which drops a closed connection.
    pub(super) fn set(&self, conn: Arc<Object>) {
        *self.0.lock().unwrap_or_else(PoisonError::into_inner) = Some(conn);
    }
}
