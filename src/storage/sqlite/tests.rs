//! Tests of the SQLite store through its own parts: its writer, its known keys and the
//! indexes its listings read.

use std::sync::Arc;
use std::time::Duration;

use rusqlite::types::{Null, ToSql};
use rusqlite::{Connection, params};

use super::error::internal;
use super::{SqliteStore, accounts, ledger, outbox};
use crate::domain::auth::{Access, Caller, KeyDigest, Refusal};
use crate::domain::entry::NewEntry;
use crate::domain::ids::{AccountId, BusinessId, BusinessName, LicenseId};
use crate::domain::ledger::{MOST_SHIFTS, UpdateType};
use crate::domain::metadata::Metadata;
use crate::domain::time::{MICROS_PER_DAY, Timestamp};
use crate::storage::columns::Shifts;
use crate::storage::error::{Result, StorageError};
use crate::storage::listing::{EntrySort, ListEntries};
use crate::storage::store::{AccountStore, HealthStore, LedgerStore, StorageOptions};

/// A store on a private file, with one business; returns the business's id too.
async fn store_with_business() -> (SqliteStore, BusinessId) {
    let options = StorageOptions {
        url: "sqlite::memory:".into(),
        timeout: Duration::from_secs(30),
        max_connections: 1,
        create_schema: true,
    };
    let store = SqliteStore::open(&options.url, &options).await.unwrap();
    let business = store
        .ensure_business(&BusinessName::parse("test").unwrap())
        .await
        .unwrap();
    (store, business)
}

/// The pair every entry of [`add`] goes to.
fn acme_seats() -> (AccountId, LicenseId) {
    (
        AccountId::parse("acme").unwrap(),
        LicenseId::parse("seats").unwrap(),
    )
}

/// A RELATIVE entry of `quantity`, effective now, on [`acme_seats`].
fn add(quantity: &str) -> NewEntry {
    let (account_id, license_id) = acme_seats();
    NewEntry {
        account_id,
        license_id,
        update_type: UpdateType::Relative,
        quantity: quantity.parse().unwrap(),
        effective_from: None,
        metadata: None,
        idempotency_key: None,
    }
}

/// A key is looked up again until it exists (unknown keys are not remembered); a key
/// found by a write or a read then serves both, and a read-only one still cannot write.
#[tokio::test]
async fn api_keys_are_remembered_once_found() {
    let (store, business) = store_with_business().await;
    let (admin, reader) = (KeyDigest::of("lsk_admin"), KeyDigest::of("lsk_reader"));
    assert_eq!(store.authenticate(admin).await.unwrap(), None);
    store.create_api_key(&business, admin, false).await.unwrap();
    store.create_api_key(&business, reader, true).await.unwrap();

    let (account, license) = acme_seats();
    let pair = (&account, &license);
    let entry = add("2");
    // The first write finds the admin key in the writer's job, the second remembers it.
    for _ in 0..2 {
        store
            .append_entry(&Caller::Key(admin, Access::Write), &entry)
            .await
            .unwrap();
    }
    // The read finds the read-only key; the write then refuses it from memory.
    let now = Timestamp::now();
    let (_, quantity) = store
        .quantity_at(&Caller::Key(reader, Access::Read), pair, now)
        .await
        .unwrap()
        .expect("two writes");
    assert_eq!(quantity.to_string(), "4");
    assert!(matches!(
        store
            .append_entry(&Caller::Key(reader, Access::Write), &entry)
            .await,
        Err(StorageError::Refused(Refusal::ReadOnly))
    ));
    let principal = store.authenticate(admin).await.unwrap().expect("created");
    assert_eq!(principal.business_id, business);
    assert!(matches!(
        store
            .quantity_at(
                &Caller::Key(KeyDigest::of("lsk_unknown"), Access::Read),
                pair,
                now
            )
            .await,
        Err(StorageError::Refused(Refusal::UnknownKey))
    ));
}

#[tokio::test]
async fn a_revoked_key_is_not_remembered() {
    let (store, business) = store_with_business().await;
    let admin = KeyDigest::of("lsk_admin");
    let id = store.create_api_key(&business, admin, false).await.unwrap();
    let (account, license) = acme_seats();
    let pair = (&account, &license);
    let now = Timestamp::now();
    store
        .quantity_at(&Caller::Key(admin, Access::Read), pair, now)
        .await
        .unwrap();

    assert!(store.revoke_api_key(&id).await.unwrap());
    assert!(matches!(
        store
            .quantity_at(&Caller::Key(admin, Access::Read), pair, now)
            .await,
        Err(StorageError::Refused(Refusal::UnknownKey))
    ));
    assert!(matches!(
        store
            .append_entry(&Caller::Key(admin, Access::Write), &add("1"))
            .await,
        Err(StorageError::Refused(Refusal::UnknownKey))
    ));
    assert!(!store.revoke_api_key(&id).await.unwrap());
}

/// Each listing reads the index [`ledger::listing`] names for its filters and order;
/// left to itself, SQLite would walk all of the business's entries for some of them,
/// reading each one's row.
#[tokio::test]
async fn a_filtered_listing_reads_the_index_of_its_filters() {
    use EntrySort::{CreatedAt, EffectiveFrom};
    let (store, business) = store_with_business().await;
    let (account, license) = acme_seats();
    // More entries of `license` than its listing by effective time would sort.
    let seeded = business.clone();
    store
        .write(move |tx| {
            let mut insert = tx
                .prepare(
                    "INSERT INTO ledger_entries (business_id, account_id, license_id, \
                     effective_from, update_type, given, absolute, created_at) \
                     VALUES (?1, 'acme', 'seats', ?2, 'ABSOLUTE', '1', '1', ?2)",
                )
                .map_err(internal)?;
            for at in 0..=ledger::FEW_ENTRIES {
                insert.execute(params![seeded, at]).map_err(internal)?;
            }
            Ok(())
        })
        .await
        .unwrap();
    let rare = LicenseId::parse("rare").unwrap();
    let instant = Timestamp::now();
    let (a, l, at) = (Some(&account), Some(&license), Some(instant));
    // (filters, sort, the index that must serve them)
    let cases = [
        (a, None, None, CreatedAt, "pair"),
        (a, l, None, EffectiveFrom, "pair"),
        (None, l, None, CreatedAt, "license"),
        (None, l, None, EffectiveFrom, "effective"),
        (None, Some(&rare), None, EffectiveFrom, "license"),
        (None, l, at, CreatedAt, "effective"),
        (None, None, at, CreatedAt, "effective"),
        (None, None, at, EffectiveFrom, "effective"),
        (None, None, None, CreatedAt, "created"),
        (None, None, None, EffectiveFrom, "effective"),
    ];
    for (account, license, effective_from, sort, index) in cases {
        let query = ListEntries {
            account_id: account.cloned(),
            license_id: license.cloned(),
            effective_from,
            sort,
            descending: true,
            after: Some((5, 6)),
            limit: 50,
        };
        let (sql, plan) = store
            .read(|conn| {
                let (sql, params) = ledger::listing(conn, &business, &query, Shifts::Sqlite)?;
                let plan = plan_of(conn, &sql, &params)?;
                Ok((sql, plan))
            })
            .unwrap();
        assert!(
            plan.iter()
                .any(|step| step.contains(&format!("INDEX ledger_entries_by_{index} "))),
            "{sql}: {plan:?}"
        );
        assert!(
            !plan.iter().any(|step| step.contains("SCAN")),
            "{sql}: {plan:?}"
        );
    }
}

/// An endpoint is leased, and its due messages read, from the two indexes of what is due:
/// during an outage, when every message fails and waits for its retry, reading them from
/// one index of every pending message walked all of the waiting ones, in the writer, for
/// every batch.
#[tokio::test]
async fn due_messages_are_read_from_the_indexes_of_what_is_due() {
    let (store, _) = store_with_business().await;
    let leasable = format!("SELECT EXISTS (SELECT 1 {})", outbox::LEASABLE);
    for sql in [leasable, outbox::DUE_MESSAGES.clone()] {
        let plan = store.read(move |conn| plan_of::<Null>(conn, &sql, &[]));
        let plan = plan.unwrap();
        for index in ["first_attempts", "retries"] {
            let named = format!("INDEX webhook_messages_{index} (");
            let searched = |step: &String| step.starts_with("SEARCH") && step.contains(&named);
            assert!(plan.iter().any(searched), "{plan:?}");
        }
        assert!(
            !plan.iter().any(|step| step.starts_with("SCAN webhook_messages")
                || step.starts_with("SCAN m")),
            "{plan:?}"
        );
    }
}

/// An endpoint's recent messages are listed in order from the unique index of their ids,
/// and old settled messages forgotten in commit order from the table: neither needs an
/// index that every message written would update, nor sorts what it reads.
#[tokio::test]
async fn messages_are_listed_and_forgotten_without_indexes_of_their_own() {
    let (store, _) = store_with_business().await;
    let plans = store.read(move |conn| {
        let listed = plan_of::<Null>(conn, &outbox::RECENT_MESSAGES, &[])?;
        let older = plan_of::<Null>(conn, &outbox::OLDER_MESSAGES, &[])?;
        Ok([listed, older, plan_of::<Null>(conn, &outbox::FORGET, &[])?])
    });
    let [listed, older, forgotten] = plans.unwrap();
    let by_ids =
        "SEARCH webhook_messages USING INDEX sqlite_autoindex_webhook_messages_1 (endpoint_id=?)";
    assert!(listed.iter().any(|step| step == by_ids), "{listed:?}");
    let from_the_page = "SEARCH webhook_messages USING INDEX sqlite_autoindex_webhook_messages_1 (endpoint_id=? AND id<?)";
    assert!(older.iter().any(|step| step == from_the_page), "{older:?}");
    let by_key = "SEARCH webhook_messages USING INTEGER PRIMARY KEY (rowid<?)";
    assert!(forgotten.iter().any(|step| step == by_key), "{forgotten:?}");
    for plan in [listed, older, forgotten] {
        assert!(
            !plan.iter().any(|step| step.contains("TEMP B-TREE")),
            "{plan:?}"
        );
    }
}

/// An import's check for another spelling of its key reads the index of keys as read, not
/// every key.
#[tokio::test]
async fn a_key_read_as_another_is_found_from_its_index() {
    let (store, _) = store_with_business().await;
    let plan = store.read(move |conn| plan_of::<Null>(conn, &accounts::KEY_READ_AS, &[]));
    let plan = plan.unwrap();
    let by_index = "SEARCH license_keys USING INDEX license_keys_as_read (<expr>=?)";
    assert!(plan.iter().any(|step| step == by_index), "{plan:?}");
}

/// The steps of SQLite's plan for `sql` with its first parameters bound to `values`; those
/// left are planned as unknown, as in a statement prepared before its values are bound.
fn plan_of<V: ToSql>(conn: &Connection, sql: &str, values: &[V]) -> Result<Vec<String>> {
    let mut stmt = (conn.prepare(&format!("EXPLAIN QUERY PLAN {sql}"))).map_err(internal)?;
    let unknown = stmt.parameter_count().saturating_sub(values.len());
    let bound = (values.iter().map(|v| v as &dyn ToSql))
        .chain(std::iter::repeat_n(&Null as &dyn ToSql, unknown));
    let steps =
        (stmt.query_map(rusqlite::params_from_iter(bound), |r| r.get(3))).map_err(internal)?;
    steps.map(|step| step.map_err(internal)).collect()
}

/// Keeps the writer busy for 300 ms, from about 50 ms after the call: the writes
/// made meanwhile wait in its queue, and make one group.
async fn hold_the_writer(store: &Arc<SqliteStore>) -> tokio::task::JoinHandle<Result<()>> {
    let store = store.clone();
    let busy = tokio::spawn(async move {
        (store.write(|_| {
            std::thread::sleep(Duration::from_millis(300));
            Ok(())
        }))
        .await
    });
    tokio::time::sleep(Duration::from_millis(50)).await;
    busy
}

/// The quantity of [`acme_seats`] now.
async fn quantity_now(store: &SqliteStore, business: &BusinessId) -> String {
    let (account, license) = acme_seats();
    let (_, quantity) = store
        .quantity_at(
            &Caller::Business(business.clone()),
            (&account, &license),
            Timestamp::now(),
        )
        .await
        .unwrap()
        .expect("a write");
    quantity.to_string()
}

/// A write given up by its caller while it waited for the writer never happens.
#[tokio::test]
async fn a_write_abandoned_before_it_runs_is_not_written() {
    let (store, business) = store_with_business().await;
    let store = Arc::new(store);
    // Keeps the writer busy while the next write waits in its queue.
    let busy = hold_the_writer(&store).await;
    let entry = add("1");
    let caller = Caller::Business(business.clone());
    let abandoned = tokio::time::timeout(
        Duration::from_millis(50),
        store.append_entry(&caller, &entry),
    );
    assert!(
        abandoned.await.is_err(),
        "the write waited behind the busy one"
    );
    busy.await.unwrap().unwrap();
    store
        .append_entry(&Caller::Business(business.clone()), &entry)
        .await
        .unwrap();
    assert_eq!(
        quantity_now(&store, &business).await,
        "1",
        "only the write still awaited happened"
    );
}

/// When SQLite rolls a group back, the write that failed answers with its own error,
/// the group's others fail without being written, and the writer goes on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_group_rolled_back_answers_each_write_and_the_writer_goes_on() {
    let (store, business) = store_with_business().await;
    let store = Arc::new(store);
    // Holds the writer, so that the next two writes make one group.
    let busy = hold_the_writer(&store).await;
    let failing = store.write(|conn| {
        // What SQLite does to the transaction on a full disk.
        conn.execute_batch("ROLLBACK").map_err(internal)?;
        Err::<(), _>(internal("database or disk is full"))
    });
    let entry = add("1");
    let caller = Caller::Business(business.clone());
    let other = store.append_entry(&caller, &entry);
    let (failing, other) = tokio::join!(failing, other);
    busy.await.unwrap().unwrap();
    let failing = failing.unwrap_err().to_string();
    assert!(failing.contains("disk is full"), "{failing}");
    assert!(
        other.is_err(),
        "the other write of the group is not acknowledged"
    );

    store
        .append_entry(&Caller::Business(business.clone()), &entry)
        .await
        .unwrap();
    assert_eq!(
        quantity_now(&store, &business).await,
        "1",
        "only the write after the group happened"
    );
}

/// A store on a scratch database whose writes are waited for `timeout`.
async fn scratch_store_waiting(timeout: Duration) -> Arc<SqliteStore> {
    let options = StorageOptions {
        url: "sqlite::memory:".into(),
        timeout,
        max_connections: 1,
        create_schema: true,
    };
    Arc::new(SqliteStore::open(&options.url, &options).await.unwrap())
}

/// A write that changes more pages than its savepoint's journal keeps in memory (see
/// .cargo/config.toml) has the journal written to a file, and succeeds: deleting an
/// endpoint with a week of messages is such a write.
#[tokio::test]
async fn a_write_that_changes_many_pages_succeeds() {
    let store = scratch_store_waiting(Duration::from_secs(30)).await;
    let run =
        |sql: &'static str| store.write(move |conn| conn.execute_batch(sql).map_err(internal));
    run("CREATE TABLE big (x BLOB);
         WITH RECURSIVE n (i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 2000)
         INSERT INTO big SELECT zeroblob(3000) FROM n")
    .await
    .unwrap();
    // About 6 MB of pages that existed before the write, all journaled.
    run("UPDATE big SET x = zeroblob(3001)").await.unwrap();
    let changed: i64 = store
        .read(|conn| {
            conn.query_row("SELECT count(*) FROM big WHERE length(x) = 3001", [], |r| {
                r.get(0)
            })
            .map_err(internal)
        })
        .unwrap();
    assert_eq!(changed, 2000);
}

/// A write whose wait runs out before the writer reaches it is never run, and says
/// so; one the writer has begun may still commit, and says that instead.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_timed_out_write_says_whether_it_may_take_effect() {
    let store = scratch_store_waiting(Duration::from_millis(300)).await;
    let insert = |x: i64| {
        move |conn: &Connection| {
            conn.execute("INSERT INTO t VALUES (?1)", [x])
                .map(drop)
                .map_err(internal)
        }
    };
    store
        .write(|conn| {
            conn.execute_batch("CREATE TABLE t (x INTEGER)")
                .map_err(internal)
        })
        .await
        .unwrap();
    let begun = tokio::spawn({
        let store = store.clone();
        async move {
            let slow = insert(1);
            store
                .write(move |conn| {
                    std::thread::sleep(Duration::from_millis(600));
                    slow(conn)
                })
                .await
        }
    });
    tokio::time::sleep(Duration::from_millis(50)).await;
    let queued = store.write(insert(2)).await;
    assert!(
        matches!(queued, Err(StorageError::Unavailable(_))),
        "{queued:?}"
    );
    let begun = begun.await.unwrap();
    assert!(
        matches!(begun, Err(StorageError::OutcomeUnknown(_))),
        "{begun:?}"
    );
    // Once the writer is free again, the begun write has committed and the other not.
    while store.write(|_| Ok(())).await.is_err() {}
    let written: String = store
        .read(|conn| {
            conn.query_row("SELECT group_concat(x) FROM t", [], |row| row.get(0))
                .map_err(internal)
        })
        .unwrap();
    assert_eq!(written, "1");
}

/// The store is not ready while its writer cannot take a write in time.
#[tokio::test]
async fn readiness_waits_for_the_writer() {
    let store = scratch_store_waiting(Duration::from_millis(500)).await;
    store.ping().await.unwrap();
    let (done, finished) = std::sync::mpsc::channel();
    let busy = store.write(move |_| {
        std::thread::sleep(Duration::from_millis(1500));
        let _ = done.send(());
        Ok(())
    });
    assert!(busy.await.is_err(), "the busy write itself times out");
    assert!(matches!(
        store.ping().await,
        Err(StorageError::Unavailable(_))
    ));
    // Once the writer is free (or if it never ran the busy write), the store is ready.
    let _ = tokio::task::spawn_blocking(move || finished.recv()).await;
    store.ping().await.unwrap();
}

/// Under a steady stream of commits the WAL starts over, rather than holding every
/// page ever written.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_wal_starts_over_under_steady_writes() {
    const WRITERS: usize = 16;
    const WRITES_EACH: usize = 400;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("wal.db");
    let url = format!("sqlite://{}", path.display());
    let options = StorageOptions {
        url: url.clone(),
        timeout: Duration::from_secs(30),
        max_connections: 1,
        create_schema: true,
    };
    let store = Arc::new(SqliteStore::open(&url, &options).await.unwrap());
    let business = store
        .ensure_business(&BusinessName::parse("wal").unwrap())
        .await
        .unwrap();
    // 8 KB of metadata per entry: the WAL holds at least that much per write it keeps.
    let metadata = Metadata::parse(
        (0..16)
            .map(|i| (format!("k{i}"), "x".repeat(500)))
            .collect(),
    )
    .unwrap();
    let metadata_bytes = (WRITERS * WRITES_EACH * 16 * 500) as u64;
    let tasks: Vec<_> = (0..WRITERS)
        .map(|writer| {
            let (store, business, metadata) = (store.clone(), business.clone(), metadata.clone());
            tokio::spawn(async move {
                for _ in 0..WRITES_EACH {
                    let entry = NewEntry {
                        account_id: AccountId::parse(format!("account-{writer}")).unwrap(),
                        license_id: LicenseId::parse("seats").unwrap(),
                        update_type: UpdateType::Relative,
                        quantity: "1".parse().unwrap(),
                        effective_from: None,
                        metadata: Some(metadata.clone()),
                        idempotency_key: None,
                    };
                    store
                        .append_entry(&Caller::Business(business.clone()), &entry)
                        .await
                        .unwrap();
                }
            })
        })
        .collect();
    let wal = dir.path().join("wal.db-wal");
    let mut largest = 0;
    while !tasks.iter().all(|t| t.is_finished()) {
        largest = largest.max(std::fs::metadata(&wal).map_or(0, |m| m.len()));
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    for task in tasks {
        task.await.unwrap();
    }
    assert!(
        largest < metadata_bytes / 2,
        "the WAL reached {largest} bytes for {metadata_bytes} bytes of metadata written"
    );
}

/// A backdated write before more than the most rewritten entries records a shift and
/// leaves them as stored; past the most shifts, the pair's are folded into its entries.
#[tokio::test]
async fn backdated_writes_record_shifts_and_fold_them() {
    let (store, business) = store_with_business().await;
    let caller = Caller::Business(business.clone());
    let on = |day: i64, quantity: &str| NewEntry {
        effective_from: Timestamp::from_micros(day * MICROS_PER_DAY),
        ..add(quantity)
    };
    for day in 100..120 {
        store.append_entry(&caller, &on(day, "1")).await.unwrap();
    }
    let stored = || {
        store.read(|conn| {
            conn.query_row(
                "SELECT group_concat(absolute), (SELECT count(*) FROM ledger_shifts)
                 FROM (SELECT absolute FROM ledger_entries ORDER BY effective_from, seq)",
                [],
                |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?)),
            )
            .map_err(internal)
        })
    };
    let (before, _) = stored().unwrap();
    store.append_entry(&caller, &on(50, "2")).await.unwrap();
    assert_eq!(stored().unwrap(), (format!("2,{before}"), 1));
    for day in (10..50).rev() {
        store.append_entry(&caller, &on(day, "1")).await.unwrap();
        assert!(stored().unwrap().1 <= MOST_SHIFTS as i64);
    }
    // 41 shifts: the first 33 folded, 8 since.
    assert_eq!(stored().unwrap().1, 8);
    let (account, license) = acme_seats();
    let last = Timestamp::from_micros(119 * MICROS_PER_DAY).unwrap();
    let quantity = store.quantity_at(&caller, (&account, &license), last);
    assert_eq!(quantity.await.unwrap().unwrap().1.to_string(), "62");
}
