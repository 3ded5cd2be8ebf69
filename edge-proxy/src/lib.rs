//! Usher's edge: a Pingora reverse proxy in front of booking-core with a
//! virtual waiting room per protected event. Fans join a queue (a signed
//! queue token, a ticket from Redis INCR), wait while positions stream to
//! them over Server-Sent Events, and are admitted in ticket order at the rate
//! the operator set; an admitted fan gets a signed access token, and only
//! requests carrying one reach the protected paths of the core. Joins pass
//! the bot defences first (`defence/`).

pub mod admin;
pub mod cache;
pub mod config;
pub mod defence;
pub mod fans;
pub mod limits;
pub mod metrics;
pub mod openapi;
pub mod proxy;
pub mod queue;
pub mod respond;
pub mod rules;
pub mod state;
pub mod tokens;

/// Taking a lock past a poisoning, as the core does.
pub use usher_shared::locks;
pub mod upstreams;
