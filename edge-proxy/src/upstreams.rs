//! The booking-cores behind the edge: named `host:port`, looked up again at
//! every discovery round (a container that restarts may come back on another
//! address), and in rotation only while their readiness path answers 200.
//!
//! A core answers `/readyz` 200 only while it reaches a writable database
//! leader, so a core cut off from the database leaves the rotation as surely
//! as a dead one; the fan's request goes to a core that can serve it.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use pingora::lb::discovery::ServiceDiscovery;
use pingora::lb::health_check::HttpHealthCheck;
use pingora::lb::selection::RoundRobin;
use pingora::lb::{Backend, Backends, LoadBalancer};
use pingora::protocols::l4::socket::SocketAddr as PeerAddr;

use crate::config::{CoreAddr, UpstreamConfig};

/// Cores out of rotation after this many failed checks in a row; one is
/// enough: a check runs every `health_check_interval_ms` and a wrongly
/// removed core is back at the next passing check.
const FAILURES_TO_REMOVE: usize = 1;
/// Checks that must pass in a row before a core returns: two, so that a core
/// flapping while its database fails over does not take fans with it.
const SUCCESSES_TO_RETURN: usize = 2;

/// The load balancer over the configured cores, with its readiness checks.
/// Run it as a background service: it looks the names up again every
/// `discovery_interval_ms` and checks every `health_check_interval_ms`.
pub fn balancer(config: &UpstreamConfig) -> LoadBalancer<RoundRobin> {
    let discovery = ByName {
        names: config.addrs.clone(),
    };
    let mut lb = LoadBalancer::from_backends(Backends::new(Box::new(discovery)));
    lb.set_health_check(readiness_check(config));
    lb.health_check_frequency = Some(Duration::from_millis(config.health_check_interval_ms));
    lb.update_frequency = Some(Duration::from_millis(config.discovery_interval_ms));
    lb
}

fn readiness_check(config: &UpstreamConfig) -> Box<HttpHealthCheck> {
    let mut check = HttpHealthCheck::new("booking-core", false);
    check.consecutive_failure = FAILURES_TO_REMOVE;
    check.consecutive_success = SUCCESSES_TO_RETURN;
    let timeout = Duration::from_millis(config.health_check_timeout_ms);
    check.peer_template.options.connection_timeout = Some(timeout);
    check.peer_template.options.read_timeout = Some(timeout);
    // The path was validated at load; should it ever fail to build, the
    // check keeps asking `/` rather than bringing the edge down.
    if let Ok(req) = pingora::http::RequestHeader::build("GET", config.health_check_path.as_bytes(), None) {
        let mut req = req;
        if req.insert_header("Host", "booking-core").is_ok() {
            check.req = req;
        }
    }
    Box::new(check)
}

/// Discovery by name: each `host:port` looked up in turn. A name that does
/// not resolve this round is left out (its core is unreachable anyway) and
/// logged; the others are kept.
struct ByName {
    names: Vec<CoreAddr>,
}

#[async_trait]
impl ServiceDiscovery for ByName {
    async fn discover(&self) -> pingora::Result<(BTreeSet<Backend>, HashMap<u64, bool>)> {
        let mut backends = BTreeSet::new();
        for name in &self.names {
            match tokio::net::lookup_host(name.as_str()).await {
                Ok(addrs) => {
                    for addr in addrs {
                        backends.insert(Backend {
                            addr: PeerAddr::Inet(addr),
                            weight: 1,
                            ext: Default::default(),
                        });
                    }
                }
                Err(e) => tracing::warn!(core = %name, error = %e, "booking-core name does not resolve"),
            }
        }
        Ok((backends, HashMap::new()))
    }
}

/// The balancer as the proxy holds it.
pub type Cores = Arc<LoadBalancer<RoundRobin>>;

/// `usher_upstream_ready{core="ip:port"}`: 1 while a core is in rotation.
pub fn render_readiness(cores: &Cores, out: &mut String) {
    use std::fmt::Write;
    let _ = writeln!(
        out,
        "# HELP usher_upstream_ready Whether a booking-core is in rotation (its readiness check passes).\n# TYPE usher_upstream_ready gauge"
    );
    let backends = cores.backends();
    for backend in backends.get_backend().iter() {
        let _ = writeln!(
            out,
            "usher_upstream_ready{{core=\"{}\"}} {}",
            backend.addr,
            u8::from(backends.ready(backend))
        );
    }
}
