//! What can go wrong in storage: a call's error, and why a database could not be opened.

use crate::domain::auth::Refusal;
use crate::domain::ledger::LedgerError;
use crate::domain::license::{ActivationError, PatchError};

#[derive(Debug, Clone, thiserror::Error)]
pub enum StorageError {
    /// The database cannot be reached or did not answer in time.
    #[error("the database is unavailable: {0}")]
    Unavailable(String),
    /// A write was under way when the wait for it ran out, or when the connection that
    /// carried its commit was lost: it may or may not take effect.
    #[error("the database did not confirm a write: {0}")]
    OutcomeUnknown(String),
    /// The API key does not exist, or does not allow the call.
    #[error(transparent)]
    Refused(#[from] Refusal),
    /// The ledger refused the write.
    #[error(transparent)]
    Ledger(#[from] LedgerError),
    /// An idempotency key was reused with a different request.
    #[error("idempotency key already used with a different request")]
    IdempotencyMismatch,
    /// No license key has that key string.
    #[error("license key not found")]
    KeyNotFound,
    /// The instance missed its heartbeat deadline and is gone: its app must activate again.
    #[error("license key instance is dead")]
    InstanceDead,
    /// The activation rules refused.
    #[error(transparent)]
    Activation(#[from] ActivationError),
    /// The change to a license key is refused.
    #[error(transparent)]
    KeyPatch(#[from] PatchError),
    /// A value that must be unique already exists.
    #[error("{0}")]
    Duplicate(String),
    /// The change is refused by a rule of the record; the message names the field.
    #[error("{0}")]
    Invalid(String),
    /// Anything else: a bug or a broken database. Never shown to clients.
    #[error("storage failure: {0}")]
    Internal(String),
}

pub type Result<T, E = StorageError> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    /// Holds how the URL begins: its scheme, or that it has none.
    #[error(
        "unsupported database URL ({0}): use sqlite://PATH, sqlite::memory:, postgres://… or postgresql://…"
    )]
    UnknownScheme(String),
    #[error("cannot open the database: {0}")]
    Failed(String),
}

impl OpenError {
    /// A database that has never had the schema, opened where it must have it already.
    pub(crate) fn no_schema() -> Self {
        OpenError::Failed(
            "it has no licensed schema: pass the server's --database-url (or set \
             LICENSED_DATABASE_URL), or create the schema with `licensed migrate`"
                .into(),
        )
    }

    /// A database whose schema a newer version of this program has migrated: this one
    /// does not know what the newer migrations changed.
    pub(crate) fn newer_schema(found: i64, known: usize) -> Self {
        OpenError::Failed(format!(
            "the database's schema is at version {found}, and this licensed knows versions up \
             to {known}: a newer licensed has migrated it, so run that one (or a newer one)"
        ))
    }
}
