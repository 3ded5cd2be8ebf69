//! booking-core's integration tests, one binary (one link instead of one
//! per file): each test gets its own database and the real service on a
//! free port (`common`); nothing is mocked.

mod common;

mod after_sale;
mod books;
mod card_limits;
mod catalog_api;
mod checkout;
mod checkout_3ds;
mod checkout_3ds_browser;
mod checkout_crash;
mod checkout_late_success;
mod concurrency;
mod db_failover;
mod disputes;
mod expiry_and_feed;
mod fan_data;
mod fees;
mod holds_api;
mod hostile_input;
mod import_cli;
mod mail;
mod metrics;
mod notifications;
mod payouts;
mod portal;
mod pricing;
mod refund_policy;
mod seat_state_model;
mod stripe_adapter;
mod waitlist;
