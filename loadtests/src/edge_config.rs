//! The edge's `[rate_limits]` section as each load test writes it: the
//! limits per address (all fans of a load test share 127.0.0.1, so most
//! turn them off) and a scope of this run's own for the counts edges share
//! through Redis, so that one run's counts never weigh on the next's.

use std::sync::OnceLock;
use std::time::{SystemTime, UNIX_EPOCH};

/// This run's scope for the edges' shared counts.
pub fn shared_scope() -> &'static str {
    static SCOPE: OnceLock<String> = OnceLock::new();
    SCOPE.get_or_init(|| {
        let now = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_nanos());
        format!("run-{}-{now:x}", std::process::id())
    })
}

/// `[rate_limits]` with these limits per address and minute (0: off); the
/// per-network join limit is off.
pub fn rate_limits(join: u32, status: u32, protected: u32) -> String {
    format!(
        "[rate_limits]\njoin_per_minute = {join}\nstatus_per_minute = {status}\nprotected_per_minute = {protected}\n\
         network_join_per_minute = 0\n\
         [rate_limits.shared]\nscope = \"{}\"\n",
        shared_scope()
    )
}
