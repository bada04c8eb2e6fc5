//! Where the data is kept: one interface, implemented by SQLite (embedded, the default)
//! and PostgreSQL (shared by many server processes). Each backend embeds its migrations.

mod columns;
mod error;
mod idempotency;
pub mod keyring;
mod listing;
pub mod postgres;
mod rows;
pub mod sqlite;
mod store;

use std::sync::Arc;

pub use error::{OpenError, Result, StorageError};
pub use listing::{
    EntrySort, KeyFilter, ListEntries, ListedEntry, MAX_ENTRY_PAGE, MAX_LISTED_ENTRIES, PageRequest,
};
pub use store::{
    AccountStore, Appended, ConsoleStore, HealthStore, KeyValidity, LedgerStore, LicenseStore,
    OutboxStore, PoolUsage, StorageOptions, Store, StoredSigningKey, WebhookStore,
};

/// Opens the database the URL names and applies its migrations.
pub async fn open(options: &StorageOptions) -> std::result::Result<Arc<dyn Store>, OpenError> {
    let url = options.url.as_str();
    if url.starts_with("sqlite:") {
        Ok(Arc::new(sqlite::SqliteStore::open(url, options).await?))
    } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        Ok(Arc::new(postgres::PgStore::open(options).await?))
    } else {
        // Only a scheme is repeated: the rest of a URL may hold a password.
        let scheme = (url.split_once("://"))
            .map(|(scheme, _)| scheme)
            .filter(|s| (1..=20).contains(&s.len()))
            .filter(|s| (s.chars()).all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c)));
        Err(OpenError::UnknownScheme(match scheme {
            Some(scheme) => format!("scheme `{scheme}`"),
            None => "no scheme".to_owned(),
        }))
    }
}
