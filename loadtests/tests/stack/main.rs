//! The load tests' integration tests, one binary: the whole stack (both
//! services, PostgreSQL, Redis, the payment sandbox) driven as fans and
//! operators would, with headless Chromium where there is a page.

mod common;

mod bot_farm;
mod dashboards;
mod fan_web;
mod observability;
mod venue_portal;
