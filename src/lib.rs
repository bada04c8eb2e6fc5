//! licensed: a self-hosted license server.
//!
//! Requests enter through [`http`], the rules live in [`domain`], the data is kept by
//! [`storage`]; [`jobs`] run beside the requests; [`cli`] wires them together.

pub mod cli;
pub mod domain;
pub mod http;
pub mod jobs;
pub mod storage;
