//! What a listing asks the store for (filters, order, page), and the listing queries
//! both backends share, written once: only the placeholder syntax differs (`?1` for
//! SQLite, `$1` for PostgreSQL).

use super::columns::{Shifts, entry_columns, license_key_columns_at};
use crate::domain::catalog::KeySource;
use crate::domain::entry::LedgerEntry;
use crate::domain::ids::{AccountId, BusinessId, CustomerId, LicenseId, ProductId};
use crate::domain::license::KeyStatus;
use crate::domain::time::Timestamp;

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
    /// The rows wanted, at most [`MAX_LISTED_ENTRIES`].
    pub limit: u32,
}

/// The largest page of a ledger listing (`pageSize`).
pub const MAX_ENTRY_PAGE: u32 = 50;

/// The most rows a ledger listing reads: the largest page and one more, which tells
/// whether there is a next page. Every listing's statement reads this many,
/// whatever its page's size, and the store keeps the first `limit`: a page size in the
/// statement's text would make each size a statement of its own, and PostgreSQL keeps
/// every statement a connection prepares.
pub const MAX_LISTED_ENTRIES: u32 = MAX_ENTRY_PAGE + 1;

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

pub enum Param<'a> {
    Text(&'a str),
    Int(i64),
}

/// The listing query and its parameters; `placeholder(n)` writes the n-th (1-based) one,
/// `source` is what the query reads from (`ledger_entries`, or it with an index hint),
/// and `license` is how a license filter names the license: the column, or the
/// expression an index holds; `shifts`, how the entries' quantities take in shifts.
pub fn list_entries<'a>(
    business_id: &'a BusinessId,
    query: &'a ListEntries,
    placeholder: fn(usize) -> String,
    (source, license): (&str, &str),
    shifts: Shifts,
) -> (String, Vec<Param<'a>>) {
    let mut params = vec![Param::Text(business_id.as_str())];
    let mut conditions = vec![format!("business_id = {}", placeholder(1))];
    let mut bind = |condition: &str, param: Param<'a>, params: &mut Vec<Param<'a>>| {
        params.push(param);
        conditions.push(condition.replace('?', &placeholder(params.len())));
    };
    if let Some(account) = &query.account_id {
        bind("account_id = ?", Param::Text(account.as_str()), &mut params);
    }
    if let Some(license_id) = &query.license_id {
        bind(
            &format!("{license} = ?"),
            Param::Text(license_id.as_str()),
            &mut params,
        );
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
        "SELECT {} FROM {source} WHERE {} \
         ORDER BY {column} {direction}, seq {direction} LIMIT {MAX_LISTED_ENTRIES}",
        entry_columns(shifts),
        conditions.join(" AND "),
    );
    (sql, params)
}

/// A page of a list ordered by creation: `size` items after the first `index` pages
/// (the first page is 0, however the client numbered it). The API lists oldest first, in
/// the order SPEC §4 gives; the console newest first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PageRequest {
    pub index: u32,
    pub size: u32,
    pub newest_first: bool,
    /// Reads one item past the page, to tell whether another page follows.
    pub one_more: bool,
}

impl PageRequest {
    pub fn offset(&self) -> i64 {
        i64::from(self.index) * i64::from(self.size)
    }

    /// The items to read: the page, and one more if asked for.
    pub fn limit(&self) -> i64 {
        i64::from(self.size) + i64::from(self.one_more)
    }

    /// The `ORDER BY` of this page's list.
    pub fn order(&self) -> &'static str {
        if self.newest_first {
            "created_at DESC, id DESC"
        } else {
            "created_at, id"
        }
    }
}

/// Filters of the license-key listing.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KeyFilter {
    pub customer_id: Option<CustomerId>,
    pub product_id: Option<ProductId>,
    pub status: Option<KeyStatus>,
    pub source: Option<KeySource>,
    pub created_at_gte: Option<Timestamp>,
    pub created_at_lte: Option<Timestamp>,
}

/// The condition a key of that status meets at the instant `now` binds: [`KeyStatus::of`]
/// in SQL (disabled wins, then `expires_at <= now`), for listings and counts.
pub fn status_condition(status: KeyStatus, now: &str) -> String {
    match status {
        KeyStatus::Disabled => "disabled".into(),
        KeyStatus::Expired => {
            format!("NOT disabled AND expires_at IS NOT NULL AND expires_at <= {now}")
        }
        KeyStatus::Active => format!("NOT disabled AND (expires_at IS NULL OR expires_at > {now})"),
    }
}

/// The license-key listing query. The status filter restates [`KeyStatus::of`] in SQL,
/// so that paging stays in the database: disabled wins, then `expires_at <= now`.
pub fn list_license_keys<'a>(
    business_id: &'a BusinessId,
    filter: &'a KeyFilter,
    page: PageRequest,
    now: Timestamp,
    placeholder: fn(usize) -> String,
    shifts: Shifts,
) -> (String, Vec<Param<'a>>) {
    // The instant the keys are read at: their live instances and seats then.
    let mut params = vec![Param::Text(business_id.as_str()), Param::Int(now.micros())];
    let mut conditions = vec![format!("business_id = {}", placeholder(1))];
    let mut bind = |condition: &str, param: Param<'a>| {
        params.push(param);
        conditions.push(condition.replace('?', &placeholder(params.len())));
    };
    if let Some(customer) = &filter.customer_id {
        bind("customer_id = ?", Param::Text(customer.as_str()));
    }
    if let Some(product) = &filter.product_id {
        bind("product_id = ?", Param::Text(product.as_str()));
    }
    if let Some(source) = filter.source {
        bind("source = ?", Param::Text(source.as_str()));
    }
    if let Some(at) = filter.created_at_gte {
        bind("created_at >= ?", Param::Int(at.micros()));
    }
    if let Some(at) = filter.created_at_lte {
        bind("created_at <= ?", Param::Int(at.micros()));
    }
    if let Some(status) = filter.status {
        conditions.push(status_condition(status, &placeholder(2)));
    }
    // The page is bound, not written into the text: one statement for every page.
    params.push(Param::Int(page.limit()));
    params.push(Param::Int(page.offset()));
    let sql = format!(
        "SELECT {} FROM license_keys WHERE {} \
         ORDER BY {} LIMIT {} OFFSET {}",
        license_key_columns_at(&placeholder(2), shifts),
        conditions.join(" AND "),
        page.order(),
        placeholder(params.len() - 1),
        placeholder(params.len())
    );
    (sql, params)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_placeholders_in_order_of_the_parameters() {
        let business = BusinessId::from("bus");
        let query = ListEntries {
            account_id: Some(AccountId::parse("acc").unwrap()),
            license_id: None,
            effective_from: None,
            sort: EntrySort::EffectiveFrom,
            descending: false,
            after: Some((5, 6)),
            limit: 11,
        };
        let (sql, params) = list_entries(
            &business,
            &query,
            |n| format!("${n}"),
            ("ledger_entries", "license_id"),
            Shifts::Postgres,
        );
        assert!(
            sql.contains(
                "business_id = $1 AND account_id = $2 AND (effective_from, seq) > ($3, $4)"
            )
        );
        assert!(sql.ends_with("ORDER BY effective_from ASC, seq ASC LIMIT 51"));
        assert_eq!(params.len(), 4);
    }

    /// PostgreSQL keeps every statement a connection prepares: a listing's text must not
    /// change with the page asked for, or a client paging through sizes and numbers
    /// would grow each connection's statements without end.
    #[test]
    fn a_listing_is_one_statement_whatever_the_page() {
        let business = BusinessId::from("bus");
        let entries = |limit| ListEntries {
            account_id: None,
            license_id: None,
            effective_from: None,
            sort: EntrySort::CreatedAt,
            descending: true,
            after: None,
            limit,
        };
        let entries_sql = |limit| {
            list_entries(
                &BusinessId::from("bus"),
                &entries(limit),
                |n| format!("${n}"),
                ("t", "l"),
                Shifts::Postgres,
            )
            .0
        };
        assert_eq!(entries_sql(2), entries_sql(MAX_LISTED_ENTRIES));

        let filter = KeyFilter::default();
        let now = Timestamp::from_micros(0).unwrap();
        let keys = |index, size| {
            list_license_keys(
                &business,
                &filter,
                PageRequest {
                    index,
                    size,
                    ..PageRequest::default()
                },
                now,
                |n| format!("${n}"),
                Shifts::Postgres,
            )
        };
        let (first, first_params) = keys(0, 10);
        let (later, later_params) = keys(6, 100);
        assert_eq!(first, later);
        assert!(matches!(
            first_params[..],
            [_, _, Param::Int(10), Param::Int(0)]
        ));
        assert!(matches!(
            later_params[..],
            [_, _, Param::Int(100), Param::Int(600)]
        ));
    }
}
