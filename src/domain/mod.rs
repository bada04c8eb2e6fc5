//! The rules of the business, free of I/O: ledger resolution and usage, quantities,
//! instants, identifiers, metadata, prices and API keys.

pub mod auth;
pub mod catalog;
pub mod console;
pub mod delivery;
pub mod entry;
pub mod events;
pub mod ids;
pub mod ledger;
pub mod license;
pub mod license_file;
pub mod metadata;
pub mod object;
pub mod pricing;
pub mod quantity;
pub mod seats;
pub mod signing;
pub mod time;
pub mod views;
pub mod webhooks;
pub mod whole_number;
