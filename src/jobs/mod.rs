//! Work every `serve` process does in the background, beside the requests it answers.

pub mod backup;
pub mod delivery;
pub mod dispatcher;
pub mod sweeper;
