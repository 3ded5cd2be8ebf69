//! Placeholder for the edge proxy. The Pingora waiting room is its own issue
//! ("Edge proxy: a Pingora waiting room that holds the herd"); until it lands
//! this binary only says so, so that the workspace layout is whole and builds.

fn main() {
    eprintln!(
        "edge-proxy is not built yet: fans reach booking-core directly in this version (see docs/ARCHITECTURE.md)"
    );
    std::process::exit(2);
}
