//! How the driver's and the pool's errors become storage errors: an outage, a commit
//! whose outcome is unknown, or a failure.

use deadpool_postgres::PoolError;
use tokio_postgres::error::SqlState;

use crate::storage::error::StorageError;

/// An error and the errors under it: the pool's says only that a connection failed, and
/// why (a TLS certificate for another host, say) is further down.
pub(super) fn with_causes(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut cause = error.source();
    while let Some(error) = cause {
        let line = error.to_string();
        if !text.ends_with(&line) {
            text = format!("{text}: {line}");
        }
        cause = error.source();
    }
    text
}

/// Maps a driver error: a lost connection or a server that cannot serve is an outage;
/// anything else is a failure.
pub(super) fn classify(error: tokio_postgres::Error) -> StorageError {
    let outage = match error.code() {
        None => {
            error.is_closed()
                || std::error::Error::source(&error).is_some_and(|s| s.is::<std::io::Error>())
        }
        Some(code) => {
            code.code().starts_with("08")
                || [
                    SqlState::ADMIN_SHUTDOWN,
                    SqlState::CRASH_SHUTDOWN,
                    SqlState::CANNOT_CONNECT_NOW,
                    SqlState::TOO_MANY_CONNECTIONS,
                ]
                .contains(code)
        }
    };
    let cause = described(&error);
    if outage {
        StorageError::Unavailable(cause)
    } else {
        StorageError::Internal(cause)
    }
}

/// What the log says of a driver error. The driver's own text is "db error": PostgreSQL's
/// message is under it, without its DETAIL, which may quote a row's values (a license
/// key, a secret).
fn described(error: &tokio_postgres::Error) -> String {
    let Some(db) = error.as_db_error() else {
        return with_causes(error);
    };
    let mut text = format!("{} {}: {}", db.severity(), db.code().code(), db.message());
    for (what, name) in [("constraint", db.constraint()), ("table", db.table())] {
        if let Some(name) = name {
            text.push_str(&format!(" ({what} {name})"));
        }
    }
    text
}

/// Maps the error of a round trip that carried a commit (a `COMMIT`, or a statement that
/// commits on its own): after a lost connection, whether PostgreSQL committed is unknown.
pub(super) fn classify_commit(error: tokio_postgres::Error) -> StorageError {
    match classify(error) {
        StorageError::Unavailable(reason) => StorageError::OutcomeUnknown(reason),
        other => other,
    }
}

/// Why the pool could not hand out a connection, in the driver's words: the pool's own
/// ("Error occurred while creating a new object") adds nothing.
pub(super) fn not_connected(error: &PoolError) -> String {
    match error {
        PoolError::Backend(error) => described(error),
        PoolError::Timeout(_) => "the server did not answer in time".into(),
        other => with_causes(other),
    }
}

pub(super) fn pool_error(error: PoolError) -> StorageError {
    match error {
        // A new connection failed: whatever PostgreSQL said (no such database, a password
        // changed, connections not allowed), it cannot be served now.
        PoolError::Backend(error) => StorageError::Unavailable(format!(
            "cannot connect to the database: {}",
            described(&error)
        )),
        PoolError::Timeout(_) => {
            StorageError::Unavailable("no database connection became available in time".into())
        }
        PoolError::Closed => StorageError::Unavailable("the connection pool is closed".into()),
        other => StorageError::Internal(other.to_string()),
    }
}
