//! SQL that both backends share, written once: the keyset-paged listing of ledger entries.
//! Only the placeholder syntax differs (`?1` for SQLite, `$1` for PostgreSQL).

use crate::domain::entry::LedgerEntry;
use crate::domain::ids::{AccountId, LicenseId};
use crate::domain::quantity::Quantity;
use crate::domain::time::Timestamp;
use crate::storage::{Result, StorageError};

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum EntrySort {
    #[serde(rename = "c")]
    CreatedAt,
    #[serde(rename = "e")]
    EffectiveFrom,
}

impl EntrySort {
    fn column(self) -> &'static str {
        match self {
            EntrySort::CreatedAt => "created_at",
            EntrySort::EffectiveFrom => "effective_from",
        }
    }
}

/// A page request: filters, order, and the position after which the page starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListEntries {
    pub account_id: Option<AccountId>,
    pub license_id: Option<LicenseId>,
    pub effective_from: Option<Timestamp>,
    pub sort: EntrySort,
    pub descending: bool,
    /// `(sort key in microseconds, seq)` of the last row of the previous page.
    pub after: Option<(i64, i64)>,
    pub limit: u32,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListedEntry {
    pub seq: i64,
    pub entry: LedgerEntry,
}

impl ListedEntry {
    /// The keyset position of this row under `sort`.
    pub fn position(&self, sort: EntrySort) -> (i64, i64) {
        let key = match sort {
            EntrySort::CreatedAt => self.entry.created_at,
            EntrySort::EffectiveFrom => self.entry.effective_from,
        };
        (key.micros(), self.seq)
    }
}

/// A row selected with [`ENTRY_COLUMNS`], before its values are checked.
pub struct EntryRow {
    pub seq: i64,
    pub account_id: String,
    pub license_id: String,
    pub absolute: Quantity,
    pub effective_from: i64,
    pub metadata: Option<String>,
    pub created_at: i64,
}

impl EntryRow {
    pub fn decode(self) -> Result<ListedEntry> {
        Ok(ListedEntry {
            seq: self.seq,
            entry: LedgerEntry {
                license_id: LicenseId::parse(self.license_id).map_err(corrupt)?,
                account_id: AccountId::parse(self.account_id).map_err(corrupt)?,
                quantity: self.absolute,
                effective_from: timestamp(self.effective_from)?,
                metadata: self
                    .metadata
                    .map(|m| serde_json::from_str(&m))
                    .transpose()
                    .map_err(corrupt)?,
                created_at: timestamp(self.created_at)?,
            },
        })
    }
}

/// An instant read back from the database.
pub fn timestamp(micros: i64) -> Result<Timestamp> {
    Timestamp::from_micros(micros).ok_or_else(|| corrupt(format!("instant {micros} out of range")))
}

/// A stored value that does not decode: the database holds something the server never writes.
pub fn corrupt(error: impl std::fmt::Display) -> StorageError {
    StorageError::Internal(format!("unreadable stored value: {error}"))
}

pub enum Param<'a> {
    Text(&'a str),
    Int(i64),
}

/// The columns every entry query selects, in the order backends decode them.
pub const ENTRY_COLUMNS: &str =
    "seq, account_id, license_id, absolute, effective_from, metadata, created_at";

/// The listing query and its parameters; `placeholder(n)` writes the n-th (1-based) one.
pub fn list_entries<'a>(
    business_id: &'a str,
    query: &'a ListEntries,
    placeholder: fn(usize) -> String,
) -> (String, Vec<Param<'a>>) {
    let mut params = vec![Param::Text(business_id)];
    let mut conditions = vec![format!("business_id = {}", placeholder(1))];
    let mut bind = |condition: &str, param: Param<'a>, params: &mut Vec<Param<'a>>| {
        params.push(param);
        conditions.push(condition.replace('?', &placeholder(params.len())));
    };
    if let Some(account) = &query.account_id {
        bind("account_id = ?", Param::Text(account.as_str()), &mut params);
    }
    if let Some(license) = &query.license_id {
        bind("license_id = ?", Param::Text(license.as_str()), &mut params);
    }
    if let Some(at) = query.effective_from {
        bind("effective_from = ?", Param::Int(at.micros()), &mut params);
    }
    let column = query.sort.column();
    let (direction, comparison) = if query.descending {
        ("DESC", "<")
    } else {
        ("ASC", ">")
    };
    if let Some((key, seq)) = query.after {
        params.push(Param::Int(key));
        params.push(Param::Int(seq));
        conditions.push(format!(
            "({column}, seq) {comparison} ({}, {})",
            placeholder(params.len() - 1),
            placeholder(params.len())
        ));
    }
    let sql = format!(
        "SELECT {ENTRY_COLUMNS} FROM ledger_entries WHERE {} \
         ORDER BY {column} {direction}, seq {direction} LIMIT {}",
        conditions.join(" AND "),
        query.limit
    );
    (sql, params)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_placeholders_in_order_of_the_parameters() {
        let query = ListEntries {
            account_id: Some(AccountId::parse("acc").unwrap()),
            license_id: None,
            effective_from: None,
            sort: EntrySort::EffectiveFrom,
            descending: false,
            after: Some((5, 6)),
            limit: 11,
        };
        let (sql, params) = list_entries("bus", &query, |n| format!("${n}"));
        assert!(
            sql.contains(
                "business_id = $1 AND account_id = $2 AND (effective_from, seq) > ($3, $4)"
            )
        );
        assert!(sql.ends_with("ORDER BY effective_from ASC, seq ASC LIMIT 11"));
        assert_eq!(params.len(), 4);
    }
}
