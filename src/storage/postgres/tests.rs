//! Tests of the PostgreSQL backend's own parts: connection settings, error
//! classification and the plans of its queries. The behaviour every backend shares is
//! tested in `tests/`.

use std::time::Duration;

use deadpool_postgres::ClientWrapper;

use super::PgStore;
use super::connect::{
    KEEPALIVES_IDLE, KEEPALIVES_INTERVAL, TCP_USER_TIMEOUT, notice_silent_servers,
};
use super::error::{classify, classify_commit};
use super::pool::{Params, query};
use super::statistics::{TURN, analyze_grown};
use super::values::params;
use super::{ledger, licenses, outbox};
use crate::domain::ids::BusinessId;
use crate::storage::columns::OLDEST_UNDELIVERED;
use crate::storage::error::StorageError;
use crate::storage::store::StorageOptions;

/// Ends a test that found no PostgreSQL at `url`: it is skipped, except under `CI=true`,
/// where PostgreSQL is required and the test fails.
fn skip_without_postgres(url: &str) {
    assert!(
        !std::env::var("CI").is_ok_and(|v| v == "true"),
        "PostgreSQL is required under CI=true"
    );
    eprintln!("skipping: PostgreSQL unreachable at {url}");
}

/// Runs `work` on a database made for it (given its URL), then drops the database
/// whatever the outcome; `None`, the test skipped, when no PostgreSQL answers.
async fn in_scratch_database<T>(
    work: impl AsyncFnOnce(String) -> Result<T, String>,
) -> Option<Result<T, String>> {
    in_scratch_database_made(&[], work).await
}

/// [`in_scratch_database`] on a database made with these options of `CREATE DATABASE`.
async fn in_scratch_database_made<T>(
    options: &[&str],
    work: impl AsyncFnOnce(String) -> Result<T, String>,
) -> Option<Result<T, String>> {
    let admin_url = "postgres://postgres@127.0.0.1:5432/postgres";
    let Ok((admin, connection)) = tokio_postgres::connect(admin_url, tokio_postgres::NoTls).await
    else {
        skip_without_postgres(admin_url);
        return None;
    };
    tokio::spawn(connection);
    let name = format!("licensed_test_{}", uuid::Uuid::new_v4().simple());
    admin
        .batch_execute(&format!("CREATE DATABASE {name} {}", options.join(" ")))
        .await
        .unwrap();
    let outcome = work(format!("postgres://postgres@127.0.0.1:5432/{name}")).await;
    admin
        .batch_execute(&format!("DROP DATABASE {name} WITH (FORCE)"))
        .await
        .unwrap();
    Some(outcome)
}

/// The store on the database at `url`, migrated, with two connections.
async fn open_store(url: &str) -> Result<PgStore, String> {
    let options = StorageOptions {
        url: url.to_owned(),
        timeout: Duration::from_secs(30),
        max_connections: 2,
        create_schema: true,
    };
    PgStore::open(&options).await.map_err(|e| e.to_string())
}

/// Runs `work` on a connection to a migrated scratch database that `seed` (SQL) has
/// filled; `None`, the test skipped, when no PostgreSQL answers.
async fn in_seeded_database<T>(
    seed: &str,
    work: impl AsyncFnOnce(&ClientWrapper) -> Result<T, String>,
) -> Option<Result<T, String>> {
    in_scratch_database(async |url| {
        let store = open_store(&url).await?;
        let conn = store.conn().await.map_err(|e| e.to_string())?;
        conn.batch_execute(seed).await.map_err(|e| e.to_string())?;
        work(&conn).await
    })
    .await
}

/// The plan PostgreSQL makes for `sql` with `params`, one step per line.
async fn plan_of(
    conn: &ClientWrapper,
    sql: &str,
    params: &Params<'_>,
) -> Result<Vec<String>, String> {
    let plan = query(conn, &format!("EXPLAIN {sql}"), params)
        .await
        .map_err(|e| e.to_string())?;
    Ok(plan.iter().map(|row| row.get(0)).collect())
}

/// An endpoint's messages are listed newest first by their ids, made in order byte by byte,
/// also in a database whose collation orders words (`a` before `B`).
#[tokio::test]
async fn messages_are_listed_newest_first_whatever_the_collation() {
    let made = [
        "TEMPLATE template0",
        "LOCALE_PROVIDER icu",
        "ICU_LOCALE 'en-US'",
        "LOCALE 'C.UTF-8'",
    ];
    let listed = in_scratch_database_made(&made, async |url| {
        let store = open_store(&url).await?;
        let conn = store.conn().await.map_err(|e| e.to_string())?;
        // `msg_B` was made before `msg_a` (`B` < `a` as bytes).
        let seed = format!(
            "{ONE_ENDPOINT}
             INSERT INTO webhook_messages (id, endpoint_id, event_type, body, created_at,
                                           status, tries, next_attempt_at, attempts)
                 VALUES ('msg_B', 'wh', 'license_update.created', '{{}}', 1, 'pending', 0, 1, '[]'),
                        ('msg_a', 'wh', 'license_update.created', '{{}}', 2, 'pending', 0, 2, '[]');"
        );
        conn.batch_execute(&seed).await.map_err(|e| e.to_string())?;
        let listing: &Params = &[&"b", &"wh", &None::<&str>, &10_i64];
        let rows = query(&conn, &outbox::RECENT_MESSAGES, listing).await;
        let rows = rows.map_err(|e| e.to_string())?;
        let older: &Params = &[&"b", &"wh", &None::<&str>, &10_i64, &"msg_a"];
        let before = query(&conn, &outbox::OLDER_MESSAGES, older).await;
        let before = before.map_err(|e| e.to_string())?;
        let ids = |rows: &[tokio_postgres::Row]| -> Vec<String> {
            rows.iter().map(|row| row.get::<_, String>("id")).collect()
        };
        Ok((ids(&rows), ids(&before)))
    })
    .await;
    let Some(listed) = listed else { return };
    assert_eq!(
        listed.unwrap(),
        (
            vec!["msg_a".to_owned(), "msg_B".to_owned()],
            vec!["msg_B".to_owned()]
        )
    );
}

/// Fails, showing the plan, unless one of its steps names `what` (an index, say).
fn assert_plan_names(plan: &[String], what: &str) {
    assert!(plan.iter().any(|step| step.contains(what)), "{plan:#?}");
}

/// A business `b` with one enabled endpoint `wh`, leased by `me`: the outbox's plan tests
/// seed their messages for it.
const ONE_ENDPOINT: &str = "INSERT INTO businesses VALUES ('b', 'b', 'brand', 0);
    INSERT INTO webhook_endpoints (id, business_id, url, description, disabled, filter_types,
        headers, metadata, secret, idempotency_digest, created_at, updated_at, lease_owner)
        VALUES ('wh', 'b', 'http://127.0.0.1:9/', '', FALSE, '[]', '{}', '{}', '', '', 0, 0,
                'me');";

fn configured(url: &str) -> tokio_postgres::Config {
    let mut config = url.parse().unwrap();
    notice_silent_servers(&mut config);
    config
}

#[test]
fn silent_servers_are_noticed_unless_the_url_says_otherwise() {
    let config = configured("postgres://postgres@127.0.0.1/test");
    assert_eq!(config.get_tcp_user_timeout(), Some(&TCP_USER_TIMEOUT));
    assert!(config.get_keepalives());
    assert_eq!(config.get_keepalives_idle(), KEEPALIVES_IDLE);
    assert_eq!(config.get_keepalives_interval(), Some(KEEPALIVES_INTERVAL));

    let config = configured(
        "postgres://postgres@127.0.0.1/test?tcp_user_timeout=60&keepalives_idle=120&keepalives_interval=30",
    );
    assert_eq!(
        config.get_tcp_user_timeout(),
        Some(&Duration::from_secs(60))
    );
    assert_eq!(config.get_keepalives_idle(), Duration::from_secs(120));
    assert_eq!(
        config.get_keepalives_interval(),
        Some(Duration::from_secs(30))
    );

    let config = configured("postgres://postgres@127.0.0.1/test?keepalives=0");
    assert!(!config.get_keepalives());
}

/// A connection lost while a commit was on its way leaves the write's outcome unknown,
/// and the error says so rather than "unavailable, retry".
#[tokio::test]
async fn a_commit_on_a_lost_connection_may_or_may_not_have_happened() {
    let url = "postgres://postgres@127.0.0.1:5432/test";
    let connect = || async {
        let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls)
            .await
            .ok()?;
        tokio::spawn(connection);
        Some(client)
    };
    let (Some(admin), Some(writer)) = (connect().await, connect().await) else {
        return skip_without_postgres(url);
    };
    writer.batch_execute("BEGIN").await.unwrap();
    let pid: i32 = writer
        .query_one("SELECT pg_backend_pid()", &[])
        .await
        .unwrap()
        .get(0);
    // Waits until the backend has gone.
    admin
        .execute("SELECT pg_terminate_backend($1, 10000)", &[&pid])
        .await
        .unwrap();
    let lost = writer.batch_execute("COMMIT").await.unwrap_err();
    let error = classify_commit(lost);
    assert!(
        matches!(error, StorageError::OutcomeUnknown(_)),
        "{error:?}"
    );
    // Outside a commit, the same loss is an outage: nothing was written.
    let lost = writer.batch_execute("SELECT 1").await.unwrap_err();
    let error = classify(lost);
    assert!(matches!(error, StorageError::Unavailable(_)), "{error:?}");
}

/// A listing by license alone reads the license index, whose license column is an
/// expression that the listing must name exactly as the index does.
#[tokio::test]
async fn a_license_listing_reads_the_license_index() {
    use crate::domain::ids::LicenseId;
    use crate::storage::listing::{EntrySort, ListEntries};

    // 100 licenses of 20 entries each, analyzed: one license is 1% of the entries.
    let seed = "INSERT INTO ledger_entries (business_id, account_id, license_id, effective_from,
                                            update_type, given, absolute, created_at)
                SELECT 'b', 'a' || i % 7, 'l' || i % 100, i, 'ABSOLUTE', 1, 1, i
                FROM generate_series(1, 2000) i;
                ANALYZE ledger_entries;";
    let Some(plans) = in_seeded_database(seed, async |conn| {
        let license = LicenseId::parse("l7").map_err(|e| e.to_string())?;
        let mut plans = Vec::new();
        for sort in [EntrySort::CreatedAt, EntrySort::EffectiveFrom] {
            let by_license = ListEntries {
                account_id: None,
                license_id: Some(license.clone()),
                effective_from: None,
                sort,
                descending: false,
                after: None,
                limit: 50,
            };
            let business = BusinessId::from("b");
            let (sql, bound) = ledger::listing(&business, &by_license);
            plans.push(plan_of(conn, &sql, &params(&bound)).await?);
        }
        Ok(plans)
    })
    .await
    else {
        return;
    };
    let plans = plans.unwrap();
    for plan in plans {
        assert_plan_names(&plan, "ledger_entries_by_license");
    }
}

/// The read of a key is planned once per connection, not on every request, even where one
/// key holds many instances: planned anew, it made the public license file route three
/// times slower.
#[tokio::test]
async fn a_key_read_keeps_its_generic_plan() {
    let now = crate::domain::time::Timestamp::now().micros();
    // One key with a heartbeat and 2 000 live instances, 200 keys without, analyzed.
    let seed = format!(
        "INSERT INTO businesses VALUES ('b', 'b', 'brand', 0);
         INSERT INTO customers VALUES ('c', 'b', 'c@example.com', 'C', NULL, '{{}}', 0);
         INSERT INTO products (id, business_id, name, metadata, created_at, updated_at)
             VALUES ('p', 'b', 'P', '{{}}', 0, 0);
         INSERT INTO license_keys (id, business_id, key, customer_id, product_id, source,
                                   created_at, heartbeat_interval)
             SELECT 'k' || i, 'b', 'KEY-' || i, 'c', 'p', 'manual', i,
                    CASE WHEN i = 0 THEN 3600 END
             FROM generate_series(0, 200) i;
         INSERT INTO license_key_instances (id, business_id, license_key_id, name, created_at,
                                            last_heartbeat_at, heartbeat_expires_at)
             SELECT 'i' || i, 'b', 'k0', 'm', i, {now}, {now} + 3600000000
             FROM generate_series(1, 2000) i;
         ANALYZE;"
    );
    let Some(plans) = in_seeded_database(&seed, async |conn| {
        let sql = licenses::key_by_string();
        for i in 0..12 {
            let key = format!("KEY-{}", i % 2);
            query(conn, &sql, &[&key, &now])
                .await
                .map_err(|e| e.to_string())?;
        }
        let plans = query(
            conn,
            "SELECT generic_plans, custom_plans FROM pg_prepared_statements WHERE statement = $1",
            &[&sql],
        )
        .await
        .map_err(|e| e.to_string())?;
        let row = plans.first().ok_or("the statement is not prepared")?;
        Ok((row.get::<_, i64>(0), row.get::<_, i64>(1)))
    })
    .await
    else {
        return;
    };
    let (generic, custom) = plans.unwrap();
    // PostgreSQL plans the first five executions for their values, then compares.
    assert_eq!((generic, custom), (7, 5));
}

/// The dispatcher reads an endpoint's due messages from the first attempts' index, however
/// many delivered messages are kept before them. Planned from statistics in which half of the
/// messages are pending, walking the primary key in order looked as cheap, and walked past
/// every delivered message for each batch.
#[tokio::test]
async fn due_messages_are_read_from_the_first_attempts_index() {
    // 5 000 delivered messages, then 5 000 pending ones, analyzed.
    let seed = format!(
        "{ONE_ENDPOINT}
             INSERT INTO webhook_messages (id, endpoint_id, event_type, body, created_at,
                                           status, tries, next_attempt_at, attempts)
                 SELECT 'msg_' || i, 'wh', 'license_update.created', '{{}}', i,
                        CASE WHEN i <= 5000 THEN 'delivered' ELSE 'pending' END, 0,
                        CASE WHEN i <= 5000 THEN NULL ELSE i END, '[]'
                 FROM generate_series(1, 10000) i;
             ANALYZE webhook_messages;"
    );
    let Some(plan) = in_seeded_database(&seed, async |conn| {
        let bound: &Params = &[&"wh", &"me", &20_000_i64, &30_000_i64, &100_i64];
        plan_of(conn, &outbox::DUE_MESSAGES, bound).await
    })
    .await
    else {
        return;
    };
    let plan = plan.unwrap();
    assert_plan_names(&plan, "using webhook_messages_first_attempts");
}

/// During an outage every message fails and waits for its retry: an endpoint is leased,
/// and its due messages read, from the two indexes of what is due, without walking the
/// waiting messages or hashing every first attempt. Read from one index of every pending
/// message, both walked all of the waiting ones, on every lease and every batch.
#[tokio::test]
async fn messages_waiting_for_a_retry_are_not_walked() {
    // 50 000 messages waiting for a retry (due at 10^12), then 100 new ones, analyzed.
    let seed = format!(
        "{ONE_ENDPOINT}
             UPDATE webhook_endpoints SET lease_owner = NULL;
             INSERT INTO webhook_messages (id, endpoint_id, event_type, body, created_at,
                                           status, tries, next_attempt_at, attempts)
                 SELECT 'msg_' || i, 'wh', 'license_update.created', '{{}}', i, 'pending',
                        CASE WHEN i <= 50000 THEN 1 ELSE 0 END,
                        CASE WHEN i <= 50000 THEN 1000000000000 ELSE i END, '[]'
                 FROM generate_series(1, 50100) i;
             ANALYZE webhook_messages;"
    );
    let Some(plans) = in_seeded_database(&seed, async |conn| {
        let now = 100_000_i64;
        let lease: &Params = &[&"me", &now, &(now + 60_000_000), &64_i64];
        let leased = plan_of(conn, &outbox::LEASE_ENDPOINTS, lease).await?;
        let batch: &Params = &[&"wh", &"me", &now, &(now + 60_000_000), &100_i64];
        let read = plan_of(conn, &outbox::DUE_MESSAGES, batch).await?;
        Ok([leased, read])
    })
    .await
    else {
        return;
    };
    for plan in plans.unwrap() {
        assert_plan_names(&plan, "using webhook_messages_first_attempts");
        assert_plan_names(&plan, "using webhook_messages_retries");
        let walks_or_hashes = |step: &String| {
            [
                "Seq Scan on webhook_messages",
                "Bitmap Heap Scan",
                "hashed SubPlan",
            ]
            .iter()
            .any(|what| step.contains(what))
        };
        assert!(!plan.iter().any(walks_or_hashes), "{plan:#?}");
    }
}

/// An endpoint's recent messages are listed in order from the unique index of their ids,
/// and old settled messages forgotten from the primary key, neither walking the whole
/// table nor sorting what it reads: no index of their own for every message to update.
#[tokio::test]
async fn messages_are_listed_and_forgotten_without_indexes_of_their_own() {
    // 20 000 delivered messages, analyzed; the first 500 are past their retention.
    let seed = format!(
        "{ONE_ENDPOINT}
             INSERT INTO webhook_messages (id, endpoint_id, event_type, body, created_at,
                                           status, tries, next_attempt_at, attempts)
                 SELECT 'msg_' || lpad(i::TEXT, 8, '0'), 'wh', 'license_update.created',
                        '{{}}', i, 'delivered', 0, NULL, '[]'
                 FROM generate_series(1, 20000) i;
             ANALYZE webhook_messages;"
    );
    let Some(plans) = in_seeded_database(&seed, async |conn| {
        let listing: &Params = &[&"b", &"wh", &None::<&str>, &100_i64];
        let listed = plan_of(conn, &outbox::RECENT_MESSAGES, listing).await?;
        let forgotten = plan_of(conn, &outbox::FORGET, &[&501_i64]).await?;
        let deleted = conn.execute(&*outbox::FORGET, &[&501_i64]).await;
        Ok(([listed, forgotten], deleted.map_err(|e| e.to_string())?))
    })
    .await
    else {
        return;
    };
    let ([listed, forgotten], deleted) = plans.unwrap();
    assert_eq!(deleted, 500);
    assert_plan_names(
        &listed,
        "Index Scan Backward using webhook_messages_endpoint_id_id_key",
    );
    assert_plan_names(&forgotten, "Index Scan using webhook_messages_pkey");
    for plan in [listed, forgotten] {
        let walks_or_sorts =
            |step: &String| step.contains("Seq Scan") || step.trim_start().starts_with("Sort");
        assert!(!plan.iter().any(walks_or_sorts), "{plan:#?}");
    }
}

/// The outbox lag metric reads the first undelivered message from its index, even when the
/// statistics still see most messages pending, as after a backlog delivered since.
#[tokio::test]
async fn the_oldest_undelivered_message_is_read_from_its_index() {
    // 20 000 messages analyzed while all pending, then all but the last 500 delivered.
    let seed = format!(
        "{ONE_ENDPOINT}
             ALTER TABLE webhook_messages SET (autovacuum_enabled = false);
             INSERT INTO webhook_messages (id, endpoint_id, event_type, body, created_at,
                                           status, tries, next_attempt_at, attempts)
                 SELECT 'msg_' || i, 'wh', 'license_update.created', '{{}}', i, 'pending', 0,
                        i, '[]'
                 FROM generate_series(1, 20000) i;
             ANALYZE webhook_messages;
             UPDATE webhook_messages SET status = 'delivered', next_attempt_at = NULL
                 WHERE created_at <= 19500;"
    );
    let Some(found) = in_seeded_database(&seed, async |conn| {
        let plan = plan_of(conn, OLDEST_UNDELIVERED, &[]).await?;
        let oldest = query(conn, OLDEST_UNDELIVERED, &[])
            .await
            .map_err(|e| e.to_string())?;
        Ok((plan, oldest.first().map(|row| row.get::<_, i64>(0))))
    })
    .await
    else {
        return;
    };
    let (plan, oldest) = found.unwrap();
    assert_plan_names(&plan, "using webhook_messages_undelivered");
    assert!(
        !plan
            .iter()
            .any(|step| step.contains("Seq Scan on webhook_messages"))
    );
    assert_eq!(oldest, Some(19501));
}

/// The dispatcher records a batch's outcomes by each message's key, however many messages
/// its endpoint has that the statistics do not know of: found by their endpoint, they were
/// planned as a hash of all of that endpoint's messages, rebuilt for every batch.
#[tokio::test]
async fn attempts_are_recorded_by_each_messages_key() {
    // Analyzed before the endpoint had any message, as a new endpoint is; then 100 000.
    let seed = format!(
        "{ONE_ENDPOINT}
             ALTER TABLE webhook_messages SET (autovacuum_enabled = false);
             ANALYZE webhook_messages;
             INSERT INTO webhook_messages (id, endpoint_id, event_type, body, created_at,
                                           status, tries, next_attempt_at, attempts)
                 SELECT 'msg_' || i, 'wh', 'license_update.created', '{{}}', i, 'pending', 0,
                        i, '[]'
                 FROM generate_series(1, 100000) i;"
    );
    let Some(plan) = in_seeded_database(&seed, async |conn| {
        let seqs: Vec<i64> = (99_901..=100_000).collect();
        let statuses = vec!["delivered"; seqs.len()];
        let tries = vec![0_i64; seqs.len()];
        let next = vec![None::<i64>; seqs.len()];
        let logs = vec![r#"{"at": 1, "status_code": 200}"#; seqs.len()];
        let bound: &Params = &[
            &"wh", &seqs, &statuses, &tries, &next, &logs, &false, &0_i64, &"me", &0_i64,
        ];
        plan_of(conn, outbox::RECORD_ATTEMPTS, bound).await
    })
    .await
    else {
        return;
    };
    let plan = plan.unwrap();
    assert_plan_names(&plan, "using webhook_messages_pkey");
    assert!(!plan.iter().any(|step| step.contains("Hash")), "{plan:#?}");
}

/// A young table that grows is analyzed by the server, without an operator; a process
/// finding another at it, or the table locked, passes without waiting.
#[tokio::test]
async fn a_growing_young_table_is_analyzed_without_waiting_on_anyone() {
    let Some(outcome) = in_scratch_database(async |url| {
        let store = open_store(&url).await?;
        let (other, connection) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
            .await
            .map_err(|e| e.to_string())?;
        tokio::spawn(connection);
        let last_analyze = || async {
            let row = other
                .query_one(
                    "SELECT last_analyze IS NOT NULL FROM pg_stat_user_tables
                     WHERE relname = 'ledger_entries'",
                    &[],
                )
                .await
                .map_err(|e| e.to_string())?;
            Ok::<bool, String>(row.get(0))
        };
        // Another process's turn, held for the session (as its transaction would hold it)
        // from before the table grows, so that the store's own task waits too.
        let held_turn = TURN.replace("pg_try_advisory_xact_lock", "pg_advisory_lock");
        other
            .batch_execute(&format!("SELECT pg_stat_reset(); {held_turn}"))
            .await
            .map_err(|e| e.to_string())?;
        let writer = store.conn().await.map_err(|e| e.to_string())?;
        writer
            .batch_execute(
                "INSERT INTO ledger_entries (business_id, account_id, license_id, effective_from,
                                             update_type, given, absolute, created_at)
                 SELECT 'b', 'a' || i % 7, 'l' || i % 100, i, 'ABSOLUTE', 1, 1, i
                 FROM generate_series(1, 5000) i",
            )
            .await
            .map_err(|e| e.to_string())?;
        drop(writer);
        let within = |what| async move {
            tokio::time::timeout(Duration::from_secs(5), what)
                .await
                .map_err(|_| "waited".to_string())
        };
        let analyzed = within(analyze_grown(&store.pool)).await?;
        assert_eq!(analyzed.map_err(|e| e.to_string())?, Vec::<String>::new());
        // The turn free, but the table held by a lock ANALYZE needs (autovacuum's, say):
        // passed over.
        other
            .batch_execute(&format!(
                "BEGIN; LOCK ledger_entries IN SHARE UPDATE EXCLUSIVE MODE; {}",
                held_turn.replace("pg_advisory_lock", "pg_advisory_unlock")
            ))
            .await
            .map_err(|e| e.to_string())?;
        within(analyze_grown(&store.pool))
            .await?
            .map_err(|e| e.to_string())?;
        assert!(!last_analyze().await?, "analyzed while locked");
        other
            .batch_execute("COMMIT")
            .await
            .map_err(|e| e.to_string())?;

        // Left alone, the store's own task analyzes it within a few seconds.
        for _ in 0..50 {
            if last_analyze().await? {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert!(last_analyze().await?, "not analyzed");
        // And not again until it has grown to twice its size.
        let analyzed = analyze_grown(&store.pool).await;
        assert_eq!(analyzed.map_err(|e| e.to_string())?, Vec::<String>::new());
        Ok(())
    })
    .await
    else {
        return;
    };
    outcome.unwrap();
}

/// A backdated write before more than the most rewritten entries records a shift and
/// leaves them as stored; past the most shifts, the pair's are folded into its entries.
#[tokio::test]
async fn backdated_writes_record_shifts_and_fold_them() {
    use crate::domain::auth::Caller;
    use crate::domain::entry::NewEntry;
    use crate::domain::ids::{AccountId, BusinessName, LicenseId};
    use crate::domain::ledger::{MOST_SHIFTS, UpdateType};
    use crate::domain::time::{MICROS_PER_DAY, Timestamp};
    use crate::storage::store::{AccountStore, LedgerStore};

    let Some(outcome) = in_scratch_database(async |url| {
        let store = open_store(&url).await?;
        let business = (store
            .ensure_business(&BusinessName::parse("test").unwrap())
            .await)
            .map_err(|e| e.to_string())?;
        let caller = Caller::Business(business);
        let (account, license) = (
            AccountId::parse("acme").unwrap(),
            LicenseId::parse("seats").unwrap(),
        );
        let on = |day: i64, quantity: &str| NewEntry {
            account_id: account.clone(),
            license_id: license.clone(),
            update_type: UpdateType::Relative,
            quantity: quantity.parse().unwrap(),
            effective_from: Timestamp::from_micros(day * MICROS_PER_DAY),
            metadata: None,
            idempotency_key: None,
        };
        let conn = store.conn().await.map_err(|e| e.to_string())?;
        let stored = async || {
            let row = conn
                .query_one(
                    "SELECT string_agg(absolute::TEXT, ',' ORDER BY effective_from, seq),
                         (SELECT count(*) FROM ledger_shifts),
                         (SELECT sum(ledger_shifts)::BIGINT FROM businesses)
                     FROM ledger_entries",
                    &[],
                )
                .await
                .map_err(|e| e.to_string())?;
            // The business counts its shifts.
            assert_eq!(row.get::<_, i64>(1), row.get::<_, i64>(2));
            Ok::<_, String>((row.get::<_, String>(0), row.get::<_, i64>(1)))
        };
        for day in 100..120 {
            (store.append_entry(&caller, &on(day, "1")).await).map_err(|e| e.to_string())?;
        }
        let (before, _) = stored().await?;
        (store.append_entry(&caller, &on(50, "2")).await).map_err(|e| e.to_string())?;
        assert_eq!(stored().await?, (format!("2,{before}"), 1));
        for day in (10..50).rev() {
            (store.append_entry(&caller, &on(day, "1")).await).map_err(|e| e.to_string())?;
            assert!(stored().await?.1 <= MOST_SHIFTS as i64);
        }
        // 41 shifts: the first 33 folded, 8 since.
        assert_eq!(stored().await?.1, 8);
        let last = Timestamp::from_micros(119 * MICROS_PER_DAY).unwrap();
        let quantity = store.quantity_at(&caller, (&account, &license), last);
        let quantity = quantity.await.map_err(|e| e.to_string())?;
        Ok(quantity.map(|(_, q)| q.to_string()))
    })
    .await
    else {
        return;
    };
    assert_eq!(outcome.unwrap().as_deref(), Some("62"));
}
