//! How an error of SQLite becomes a [`StorageError`].

use crate::storage::error::StorageError;

pub(super) fn internal(error: impl std::fmt::Display) -> StorageError {
    StorageError::Internal(error.to_string())
}
