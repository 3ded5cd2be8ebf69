//! The edge's integration tests, one binary (one link of Pingora instead of
//! one per file): the real edge-proxy binary started by `common` on free
//! ports, in front of a counting upstream, against real Redis.

mod common;

mod cache;
mod cluster;
mod core_failover;
mod defences;
mod fairness;
mod forwarded;
mod key_rotation;
mod openapi;
mod protocols;
mod resilience;
mod several_edges;
mod shared_limits;
mod streams;
mod waiting_page;
mod waiting_room;
mod walkarounds;
