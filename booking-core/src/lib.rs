//! Usher's booking core: the catalog, venue seat maps, holds that can never
//! double-book, checkout through a payment provider, and tickets.
//!
//! Domain modules (`catalog`, `venues`, `inventory`, `checkout`, `tickets`,
//! `idempotency`, `identity`, `portal`, `pricing`, `waitlist`, `fans`) hold the rules and the SQL; `http` is the only place that
//! knows about requests and responses, and it maps every domain error once.
//! `metrics` is the SREs' registry, which domain modules record into.

pub mod app;
pub mod catalog;
pub mod checkout;
pub mod config;
pub mod db;
pub mod fans;
pub mod http;
pub mod idempotency;
pub mod identity;
pub mod ids;
pub mod inventory;
pub mod metrics;
pub mod outbox;
pub mod portal;
pub mod pricing;
pub mod seed;
pub mod signature;
pub mod states;
pub mod tickets;
pub mod venues;
pub mod waitlist;
