//! The ledger's store on its own, on every backend: writes in any order resolve as the
//! history replayed, and a usage report reads one state of the ledger while backdated
//! writes commit.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use common::{Backend, TestDatabase};
use licensed::domain::auth::Caller;
use licensed::domain::entry::NewEntry;
use licensed::domain::ids::{AccountId, BusinessId, BusinessName, LicenseId};
use licensed::domain::ledger::UpdateType;
use licensed::domain::time::{MICROS_PER_DAY, Timestamp};
use licensed::storage::{self, Appended, StorageError, Store};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};

mod sqlite {
    use super::Backend;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_usage_history_reads_one_state_of_the_ledger() {
        super::a_usage_history_reads_one_state_of_the_ledger(Backend::Sqlite).await;
    }

    #[test]
    fn writes_in_any_order_resolve_as_the_history_replayed() {
        super::writes_in_any_order_resolve_as_the_history_replayed(Backend::Sqlite);
    }
}

mod postgres {
    use super::Backend;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_usage_history_reads_one_state_of_the_ledger() {
        super::a_usage_history_reads_one_state_of_the_ledger(Backend::Postgres).await;
    }

    #[test]
    fn writes_in_any_order_resolve_as_the_history_replayed() {
        super::writes_in_any_order_resolve_as_the_history_replayed(Backend::Postgres);
    }
}

/// One business's ledger in a database of its own. Its methods are the only calls to the
/// store in this file.
#[derive(Clone)]
struct Ledger {
    store: Arc<dyn Store>,
    business: BusinessId,
}

impl Ledger {
    /// A ledger on `backend`, and the database that holds it, to keep for as long as the
    /// ledger is used; `None` when the backend's tests are skipped.
    async fn open(backend: Backend) -> Option<(Self, TestDatabase)> {
        let database = TestDatabase::create(backend).await?;
        let store = common::open_store(&database.url).await;
        let name = BusinessName::parse("test").unwrap();
        let business = store.ensure_business(&name).await.unwrap();
        Some((Self { store, business }, database))
    }

    async fn append(&self, entry: &NewEntry) -> storage::Result<Appended> {
        self.store
            .append_entry(&Caller::Business(self.business.clone()), entry)
            .await
    }

    /// The quantity of `account`'s seats at the start of `day`, if an entry is in effect.
    async fn quantity_at(&self, account: &AccountId, day: i64) -> Option<i64> {
        let (license, caller) = (seats(), Caller::Business(self.business.clone()));
        let read = (self.store).quantity_at(&caller, (account, &license), instant(day));
        read.await.unwrap().map(|(_, q)| whole(q))
    }

    /// What a usage report of `account`'s seats over days `[start, end)` reads: the quantity
    /// at the start, then the quantity after each entry within.
    async fn history(&self, account: &AccountId, start: i64, end: i64) -> (i64, Vec<i64>) {
        let license = seats();
        let pair = (account, &license);
        let read = self
            .store
            .history(&self.business, pair, instant(start), instant(end));
        let (initial, changes) = read.await.unwrap();
        (
            whole(initial),
            changes.into_iter().map(|(_, q)| whole(q)).collect(),
        )
    }
}

fn seats() -> LicenseId {
    LicenseId::parse("seats").unwrap()
}

fn instant(day: i64) -> Timestamp {
    Timestamp::from_micros(day * MICROS_PER_DAY).unwrap()
}

fn whole(quantity: impl ToString) -> i64 {
    quantity.to_string().parse().unwrap()
}

/// An entry of `account`'s seats, effective at the start of `day`.
fn entry(account: &AccountId, absolute: bool, quantity: i64, day: i64) -> NewEntry {
    NewEntry {
        account_id: account.clone(),
        license_id: seats(),
        update_type: if absolute {
            UpdateType::Absolute
        } else {
            UpdateType::Relative
        },
        quantity: quantity.to_string().parse().unwrap(),
        effective_from: Some(instant(day)),
        metadata: None,
        idempotency_key: None,
    }
}

/// A usage report reads one state of the ledger: a backdated write that commits while it
/// reads moves the quantity at its start and every later one, never only the later.
async fn a_usage_history_reads_one_state_of_the_ledger(backend: Backend) {
    let Some((ledger, _database)) = Ledger::open(backend).await else {
        return;
    };
    let acme = AccountId::parse("acme").unwrap();
    // Ten increments inside the report's days [10, 30).
    for day in 11..=20 {
        ledger.append(&entry(&acme, false, 1, day)).await.unwrap();
    }
    let backdating = tokio::spawn({
        let (ledger, acme) = (ledger.clone(), acme.clone());
        async move {
            for i in 0..200 {
                let before_the_report = entry(&acme, false, 1, 1 + i % 9);
                ledger.append(&before_the_report).await.unwrap();
            }
        }
    });
    let mut reports = 0;
    while !backdating.is_finished() {
        let (initial, seen) = ledger.history(&acme, 10, 30).await;
        let expected: Vec<i64> = (1..=10).map(|k| initial + k).collect();
        assert_eq!(seen, expected, "report {reports}, from {initial}");
        reports += 1;
    }
    backdating.await.unwrap();
    assert!(reports > 0);
}

/// Histories of entries: each its day (days collide often), whether it is ABSOLUTE, and
/// its quantity.
fn entries() -> impl Strategy<Value = Vec<(i64, bool, i64)>> {
    prop::collection::vec(
        (0..5i64, any::<bool>()).prop_flat_map(|(day, absolute)| {
            let quantity = if absolute { 0..=5i64 } else { -3..=4i64 };
            (Just(day), Just(absolute), quantity)
        }),
        1..14,
    )
}

/// Appended, tied with or placed before earlier entries, every entry resolves as a replay
/// of the whole history in ledger order would: a write is refused exactly when some
/// quantity would go negative, and the quantity at every instant agrees.
///
/// One database serves every case; each case writes to an account of its own.
fn writes_in_any_order_resolve_as_the_history_replayed(backend: Backend) {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let Some((ledger, _database)) = runtime.block_on(Ledger::open(backend)) else {
        return;
    };
    let cases_run = AtomicUsize::new(0);
    let config = Config {
        cases: 48,
        source_file: Some(file!()),
        ..Config::default()
    };
    let outcome = TestRunner::new(config).run(&entries(), |history| {
        let case = cases_run.fetch_add(1, Ordering::Relaxed);
        let account = AccountId::parse(format!("case-{case}")).unwrap();
        runtime.block_on(replays_as_written(&ledger, &account, &history));
        Ok(())
    });
    if let Err(failure) = outcome {
        panic!("{failure}");
    }
}

/// Writes `history` to `account` one entry after another, checking each write and then
/// the quantity on every day against a replay of the entries kept.
async fn replays_as_written(ledger: &Ledger, account: &AccountId, history: &[(i64, bool, i64)]) {
    // The quantities in effect after each entry kept so far, in ledger order.
    let replay = |kept: &[(i64, bool, i64)]| {
        let mut ordered = kept.to_vec();
        ordered.sort_by_key(|&(day, _, _)| day); // stable: ties keep write order
        let mut running = 0;
        (ordered.iter())
            .map(|&(day, absolute, quantity)| {
                running = if absolute {
                    quantity
                } else {
                    running + quantity
                };
                (day, running)
            })
            .collect::<Vec<(i64, i64)>>()
    };
    let mut kept = Vec::new();
    for &(day, absolute, quantity) in history {
        let mut candidate = kept.clone();
        candidate.push((day, absolute, quantity));
        let accepted = replay(&candidate).iter().all(|&(_, q)| q >= 0);
        let entry = entry(account, absolute, quantity, day);
        let written = ledger.append(&entry).await;
        assert_eq!(
            written.is_ok(),
            accepted,
            "{entry:?} after {kept:?}: {written:?}"
        );
        if accepted {
            kept = candidate;
        } else {
            let refused = matches!(written, Err(StorageError::Ledger(_)));
            assert!(refused, "refused by the ledger's rules: {written:?}");
        }
    }
    let resolved = replay(&kept);
    for day in 0..5 {
        let expected = (resolved.iter().rev())
            .find(|&&(d, _)| d <= day)
            .map(|&(_, q)| q);
        let stored = ledger.quantity_at(account, day).await;
        assert_eq!(stored, expected, "day {day} of {kept:?}");
    }
}
