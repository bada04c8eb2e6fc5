//! The ledger's store on its own, on every backend: writes in any order resolve as the
//! history replayed, and a usage report reads one state of the ledger while backdated
//! writes commit; backdated writes before many entries (which record shifts rather
//! than rewrite them) leave every figure as a replay of the history gives it.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use common::{Backend, TestDatabase};
use licensed::domain::auth::Caller;
use licensed::domain::entry::NewEntry;
use licensed::domain::ids::{AccountId, BusinessId, BusinessName, LicenseId};
use licensed::domain::ledger::UpdateType;
use licensed::domain::metadata::Metadata;
use licensed::domain::time::{MICROS_PER_DAY, Timestamp};
use licensed::storage::{self, Appended, EntrySort, ListEntries, StorageError, Store};
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

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn backdated_writes_before_many_entries_keep_every_figure_exact() {
        super::backdated_writes_before_many_entries_keep_every_figure_exact(Backend::Sqlite).await;
    }

    #[test]
    fn long_histories_with_backdated_writes_resolve_as_replayed() {
        super::long_histories_with_backdated_writes_resolve_as_replayed(Backend::Sqlite);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn entries_written_under_earlier_rules_still_read() {
        super::entries_written_under_earlier_rules_still_read(Backend::Sqlite).await;
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

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn backdated_writes_before_many_entries_keep_every_figure_exact() {
        super::backdated_writes_before_many_entries_keep_every_figure_exact(Backend::Postgres)
            .await;
    }

    #[test]
    fn long_histories_with_backdated_writes_resolve_as_replayed() {
        super::long_histories_with_backdated_writes_resolve_as_replayed(Backend::Postgres);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn entries_written_under_earlier_rules_still_read() {
        super::entries_written_under_earlier_rules_still_read(Backend::Postgres).await;
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

impl Ledger {
    /// Every entry of `account`'s seats in ledger order: `(day, quantity)`.
    async fn entries(&self, account: &AccountId) -> Vec<(i64, i64)> {
        let mut query = ListEntries {
            account_id: Some(account.clone()),
            license_id: Some(seats()),
            effective_from: None,
            sort: EntrySort::EffectiveFrom,
            descending: false,
            after: None,
            limit: storage::MAX_ENTRY_PAGE,
        };
        let mut all = Vec::new();
        loop {
            let page = self
                .store
                .list_entries(&self.business, &query)
                .await
                .unwrap();
            let Some(last) = page.last() else {
                return all;
            };
            query.after = Some((last.entry.effective_from.micros(), last.seq));
            let listed = page.iter().map(|l| {
                let day = l.entry.effective_from.micros() / MICROS_PER_DAY;
                (day, whole(l.entry.quantity))
            });
            all.extend(listed);
        }
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

/// An account id of whitespace alone, which clients may no longer send but could before,
/// still reads: listed, and its quantity known.
async fn entries_written_under_earlier_rules_still_read(backend: Backend) {
    let Some((ledger, _database)) = Ledger::open(backend).await else {
        return;
    };
    let blank = AccountId::from_stored("   ").unwrap();
    assert!(AccountId::parse("   ").is_err(), "a client's is refused");
    ledger.append(&entry(&blank, true, 3, 1)).await.unwrap();
    assert_eq!(ledger.entries(&blank).await, [(1, 3)]);
    assert_eq!(ledger.quantity_at(&blank, 2).await, Some(3));
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
fn writes_in_any_order_resolve_as_the_history_replayed(backend: Backend) {
    cases_resolve_as_replayed(backend, 48, entries(), 4, |history| history);
}

/// Runs `cases` cases drawn from `strategy` on one database, each on an account of its
/// own: the writes `writes_of` makes of a case, `(day, absolute, quantity)`, each kept or
/// refused as a replay says, then every figure up to `last_day` as the replay gives it.
fn cases_resolve_as_replayed<S: Strategy>(
    backend: Backend,
    cases: u32,
    strategy: S,
    last_day: i64,
    writes_of: impl Fn(S::Value) -> Vec<(i64, bool, i64)>,
) {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let Some((ledger, _database)) = runtime.block_on(Ledger::open(backend)) else {
        return;
    };
    let cases_run = AtomicUsize::new(0);
    let config = Config {
        cases,
        source_file: Some(file!()),
        ..Config::default()
    };
    let outcome = TestRunner::new(config).run(&strategy, |case| {
        let n = cases_run.fetch_add(1, Ordering::Relaxed);
        let account = AccountId::parse(format!("case-{n}")).unwrap();
        runtime.block_on(async {
            let mut kept = Vec::new();
            for write in writes_of(case) {
                write_checked(&ledger, &account, &mut kept, write).await;
            }
            agrees_with_replay(&ledger, &account, &kept, last_day).await;
        });
        Ok(())
    });
    if let Err(failure) = outcome {
        panic!("{failure}");
    }
}

/// The quantities after each entry of `kept` (`(day, absolute, quantity)` in write order),
/// in ledger order: `(day, quantity)`.
fn replay(kept: &[(i64, bool, i64)]) -> Vec<(i64, i64)> {
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
        .collect()
}

/// Writes `(day, absolute, quantity)` and checks that it is kept exactly when a replay
/// with it has no negative quantity.
async fn write_checked(
    ledger: &Ledger,
    account: &AccountId,
    kept: &mut Vec<(i64, bool, i64)>,
    (day, absolute, quantity): (i64, bool, i64),
) {
    let mut candidate = kept.clone();
    candidate.push((day, absolute, quantity));
    let accepted = replay(&candidate).iter().all(|&(_, q)| q >= 0);
    let written = ledger
        .append(&entry(account, absolute, quantity, day))
        .await;
    match written {
        Ok(Appended::Created(ref created)) if accepted => {
            let expected = replay(&candidate);
            let at = (expected.iter().rposition(|&(d, _)| d == day)).unwrap();
            assert_eq!(whole(created.quantity), expected[at].1, "{day} {quantity}");
            *kept = candidate;
        }
        Err(StorageError::Ledger(_)) if !accepted => {}
        other => panic!("({day}, {absolute}, {quantity}) after {kept:?}: {other:?}"),
    }
}

/// Every figure the store reports of `account` agrees with a replay of `kept`: each entry's
/// quantity, the quantity at every day up to `last_day`, and the history over them.
async fn agrees_with_replay(
    ledger: &Ledger,
    account: &AccountId,
    kept: &[(i64, bool, i64)],
    last_day: i64,
) {
    let resolved = replay(kept);
    assert_eq!(
        ledger.entries(account).await,
        resolved,
        "entries of {kept:?}"
    );
    let at = |day: i64| {
        (resolved.iter().rev())
            .find(|&&(d, _)| d <= day)
            .map(|&(_, q)| q)
    };
    for day in 0..=last_day {
        assert_eq!(
            ledger.quantity_at(account, day).await,
            at(day),
            "day {day} of {kept:?}"
        );
    }
    let (initial, changes) = ledger.history(account, 0, last_day + 1).await;
    let within: Vec<i64> = (resolved.iter())
        .filter(|&&(d, _)| d > 0)
        .map(|&(_, q)| q)
        .collect();
    assert_eq!((initial, changes), (at(0).unwrap_or(0), within));
}

/// Backdated writes before many entries: a RELATIVE one, an ABSOLUTE one inside the range
/// the first moved, one refused for a later quantity it would make negative, an append
/// after them all, and more backdated writes than a pair keeps shifts for.
async fn backdated_writes_before_many_entries_keep_every_figure_exact(backend: Backend) {
    let Some((ledger, _database)) = Ledger::open(backend).await else {
        return;
    };
    let acme = AccountId::parse("acme").unwrap();
    let mut kept = Vec::new();
    for day in 100..130 {
        write_checked(&ledger, &acme, &mut kept, (day, false, 1)).await;
    }
    let writes = [
        (50, false, 5),   // before all thirty
        (110, true, 2),   // inside the range the first moved
        (60, false, -3),  // before the ten up to the ABSOLUTE one
        (55, false, -3),  // refused: the entry at day 60 would hold -1
        (130, false, 1),  // after every entry
        (105, false, -8), // refused at day 105 itself
        (105, false, -7), // takes day 105 to 0
    ];
    for write in writes {
        write_checked(&ledger, &acme, &mut kept, write).await;
        agrees_with_replay(&ledger, &acme, &kept, 131).await;
    }
    // Its metadata replaced, an entry a shift covers answers with its quantity.
    let metadata = Metadata::parse([("k".to_owned(), "v".to_owned())].into()).unwrap();
    let pair = (&acme, &seats());
    let patched = (ledger.store).update_metadata(&ledger.business, pair, instant(120), &metadata);
    let patched = patched.await.unwrap().unwrap();
    let expected = replay(&kept)
        .into_iter()
        .find(|&(day, _)| day == 120)
        .unwrap()
        .1;
    assert_eq!(whole(patched.quantity), expected);
    assert_eq!(kept.len(), 30 + 5);
    // Forty more backdated writes, each before more than the most entries rewritten.
    for day in (10..50).rev() {
        write_checked(&ledger, &acme, &mut kept, (day, false, 1)).await;
        if day % 8 == 0 {
            agrees_with_replay(&ledger, &acme, &kept, 131).await;
        }
    }
    agrees_with_replay(&ledger, &acme, &kept, 131).await;
}

/// Long histories, mostly appended, some written far back: each write kept or refused as
/// a replay says, and every figure as the replay gives it.
fn long_histories_with_backdated_writes_resolve_as_replayed(backend: Backend) {
    let writes = prop::collection::vec((0..40i64, any::<bool>(), 0..=6i64, -2..=3i64), 20..60);
    cases_resolve_as_replayed(backend, 12, writes, 100, |writes| {
        (writes.into_iter().enumerate())
            .map(|(i, (back, absolute, set, add))| {
                // One write in four goes back up to 40 days; the others go after the rest.
                let day = if i % 4 == 3 { 40 - back } else { 40 + i as i64 };
                match absolute && i % 3 == 0 {
                    true => (day, true, set),
                    false => (day, false, add),
                }
            })
            .collect()
    });
}
