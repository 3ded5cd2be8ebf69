//! The parts of a fan's request the edge reads (headers, cookies, the
//! client's id and binding) and the cookies it sets, named in one place.

use std::net::IpAddr;

use pingora::proxy::Session;
use usher_shared::ACCESS_HEADER;

use crate::config::Network;
use crate::state::EdgeState;
use crate::tokens;

/// The parts of a request the waiting room looks at.
pub struct Request {
    pub method: String,
    pub path: String,
    pub query: String,
    cookies: Vec<(String, String)>,
    authorization: Option<String>,
    /// An app's access token (`usher-access`); browsers send a cookie.
    pub access: Option<String>,
    client_header: Option<String>,
    pub(super) user_agent: String,
    pub(super) accept_language: String,
    /// The bot defences' headers: a solved puzzle, a CAPTCHA token, the
    /// fan's identity token.
    pub(super) pow: Option<String>,
    pub(super) captcha: Option<String>,
    pub(super) fan: Option<String>,
}

impl Request {
    pub fn of(session: &Session) -> Request {
        let h = session.req_header();
        Request::from_parts(h.method.as_str(), &h.uri, &h.headers)
    }

    pub fn from_parts(method: &str, uri: &http::Uri, headers: &http::HeaderMap) -> Request {
        let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).map(str::to_owned);
        let cookies = headers
            .get_all("cookie")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(';'))
            .filter_map(|c| c.trim().split_once('=').map(|(k, v)| (k.to_owned(), v.to_owned())))
            .collect();
        Request {
            method: method.to_owned(),
            path: uri.path().to_owned(),
            query: uri.query().unwrap_or("").to_owned(),
            cookies,
            authorization: header("authorization"),
            access: header(ACCESS_HEADER),
            client_header: header("usher-client"),
            user_agent: header("user-agent").unwrap_or_default(),
            accept_language: header("accept-language").unwrap_or_default(),
            pow: header("usher-pow"),
            captcha: header("usher-captcha"),
            fan: header("usher-fan"),
        }
    }

    pub fn cookie(&self, name: &str) -> Option<&str> {
        self.cookies.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }

    fn cookies_with_prefix<'a>(&'a self, prefix: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.cookies
            .iter()
            .filter(move |(k, _)| k.starts_with(prefix))
            .map(|(_, v)| v.as_str())
    }

    pub(super) fn query_param(&self, name: &str) -> Option<&str> {
        self.query
            .split('&')
            .find_map(|kv| kv.split_once('=').filter(|(k, _)| *k == name).map(|(_, v)| v))
    }

    pub(super) fn bearer(&self) -> Option<&str> {
        self.authorization.as_deref().and_then(|a| a.strip_prefix("Bearer "))
    }

    /// The client id this request carries (cookie for browsers, header for
    /// apps), if any.
    pub fn client_id(&self) -> Option<&str> {
        self.cookie(CLIENT_COOKIE)
            .or(self.client_header.as_deref())
            .filter(|c| !c.is_empty() && c.len() <= 64)
    }

    /// The binding of this request's client, given its client id.
    pub fn binding(&self, client: &str) -> String {
        tokens::binding(client, &self.user_agent, &self.accept_language)
    }

    /// The binding of the client this request comes from (the empty id if it
    /// carries none), to compare with a token's.
    pub fn own_binding(&self) -> String {
        self.binding(self.client_id().unwrap_or(""))
    }

    /// This request's client id, or a new one with the cookie that keeps it.
    pub fn client_or_new(&self, state: &EdgeState) -> (String, Vec<(&'static str, String)>) {
        match self.client_id() {
            Some(client) => (client.to_owned(), Vec::new()),
            None => {
                let client = uuid::Uuid::new_v4().simple().to_string();
                let cookie = set_cookie(state, CLIENT_COOKIE, &client, CLIENT_COOKIE_MAX_AGE_SECS);
                (client, vec![("set-cookie", cookie)])
            }
        }
    }
}

/// The address the request came from, when it came over IP: the peer's,
/// or, when the peer is one of `listen.trusted_proxies` (the balancer), the
/// client its `X-Forwarded-For` names (`forwarded_client`).
pub fn client_ip(state: &EdgeState, session: &Session) -> Option<IpAddr> {
    let peer = session.client_addr().and_then(|a| a.as_inet()).map(|a| a.ip())?;
    let forwarded = session.req_header().headers.get_all("x-forwarded-for");
    let hops = forwarded.iter().filter_map(|v| v.to_str().ok());
    Some(forwarded_client(peer, hops, &state.config.listen.trusted_proxies))
}

/// Who sent a request that reached us from `peer`. Each proxy appends the
/// address it saw to `X-Forwarded-For`, so the list is read right to left
/// and believed only while the hop that wrote it is trusted: the first
/// address that is not a trusted proxy is the client. Anything a client
/// wrote itself sits further left and is never reached. An untrusted peer
/// is the client, whatever it sends.
pub fn forwarded_client<'a>(peer: IpAddr, headers: impl Iterator<Item = &'a str>, trusted: &[Network]) -> IpAddr {
    let is_trusted = |ip: IpAddr| trusted.iter().any(|n| n.contains(ip));
    if !is_trusted(peer) {
        return peer;
    }
    let hops: Vec<&str> = headers.flat_map(|h| h.split(',')).map(str::trim).collect();
    let mut client = peer;
    for hop in hops.iter().rev() {
        // An unreadable hop ends the trail at the last one we can vouch for.
        let Ok(ip) = hop.parse::<IpAddr>() else {
            return client;
        };
        client = ip;
        if !is_trusted(ip) {
            return ip;
        }
    }
    client
}

pub const CLIENT_COOKIE: &str = "usher_client";
/// A client id outlives any one sale: it is what binds the fan's tokens.
const CLIENT_COOKIE_MAX_AGE_SECS: u64 = 30 * 86400;
const ACCESS_COOKIE_PREFIX: &str = "usher_access_";

pub fn queue_cookie(event: i64) -> String {
    format!("usher_q_{event}")
}

pub fn access_cookie(event: i64) -> String {
    format!("{ACCESS_COOKIE_PREFIX}{event}")
}

/// The access tokens of every event this request carries a cookie for.
pub fn access_cookies(req: &Request) -> impl Iterator<Item = &str> {
    req.cookies_with_prefix(ACCESS_COOKIE_PREFIX)
}

/// Clears an event's access cookie (its session ended), with the same
/// attributes it was set with (a browser may ignore a clearing cookie that
/// is not `Secure` over HTTPS).
pub fn clear_access_cookie(state: &EdgeState, event: i64) -> String {
    set_cookie(state, &access_cookie(event), "", 0)
}

pub fn set_cookie(state: &EdgeState, name: &str, value: &str, max_age: u64) -> String {
    let secure = if state.config.tokens.secure_cookies {
        "; Secure"
    } else {
        ""
    };
    format!("{name}={value}; Path=/; Max-Age={max_age}; HttpOnly; SameSite=Lax{secure}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn only_a_trusted_balancer_names_the_client() {
        let lb = [Network::parse("10.0.0.0/8").unwrap()];
        let who = |peer: &str, headers: &[&str]| forwarded_client(ip(peer), headers.iter().copied(), &lb);
        // The balancer appended what it saw.
        assert_eq!(who("10.0.0.5", &["203.0.113.7"]), ip("203.0.113.7"));
        // What the client wrote itself is further left and never believed.
        assert_eq!(who("10.0.0.5", &["198.51.100.1, 203.0.113.7"]), ip("203.0.113.7"));
        assert_eq!(who("10.0.0.5", &["198.51.100.1", "203.0.113.7"]), ip("203.0.113.7"));
        // Two trusted hops: the first untrusted address from the right.
        assert_eq!(who("10.0.0.5", &["203.0.113.7, 10.0.0.9"]), ip("203.0.113.7"));
        // An untrusted peer is the client, whatever it says.
        assert_eq!(who("192.0.2.4", &["203.0.113.7"]), ip("192.0.2.4"));
        // Nothing forwarded, or nothing readable: the last hop vouched for.
        assert_eq!(who("10.0.0.5", &[]), ip("10.0.0.5"));
        assert_eq!(who("10.0.0.5", &["unknown"]), ip("10.0.0.5"));
        assert_eq!(who("10.0.0.5", &["garbage, 10.0.0.9"]), ip("10.0.0.9"));
        assert_eq!(who("10.0.0.5", &["2001:db8::1"]), ip("2001:db8::1"));
    }
}
