//! The fan web app, served from the binary: one small HTML shell for every
//! page, and the assets it loads (plain CSS and ES modules, no build step).
//!
//! Why this shape: the shell is a few hundred bytes and revalidated on each
//! visit, because it names the current assets; every asset is served under a
//! name carrying its content hash and cached for a year (by browsers and by
//! the edge), so a release is picked up at the next page load and old and new
//! files never mix. Modules import each other by plain names
//! (`/assets/api.js`), which the shell's import map resolves to hashed ones.
//! Pages are ordinary URLs, so the edge's waiting-room rules apply to them
//! exactly as to the API (a fan without admission asking for an event's seat
//! page is sent to the waiting room, and comes back here).

use std::collections::HashMap;
use std::sync::Arc;

use axum::Router;
use axum::extract::Path;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use base64::Engine;
use serde_json::json;
use sha2::{Digest, Sha256};

use crate::checkout::sandbox::TEST_CARDS;
use crate::http::problem::ApiError;

/// (file under `booking-core/web/assets/`, its bytes, its content type)
macro_rules! assets {
    ($(($name:literal, $ty:literal)),* $(,)?) => {
        &[$(($name, include_bytes!(concat!("../../web/assets/", $name)) as &[u8], $ty)),*]
    };
}

const FILES: &[(&str, &[u8], &str)] = assets![
    ("style.css", "text/css; charset=utf-8"),
    ("api.js", "text/javascript; charset=utf-8"),
    ("app.js", "text/javascript; charset=utf-8"),
    ("catalog.js", "text/javascript; charset=utf-8"),
    ("seatmap.js", "text/javascript; charset=utf-8"),
    ("seats.js", "text/javascript; charset=utf-8"),
    ("checkout.js", "text/javascript; charset=utf-8"),
    ("orders.js", "text/javascript; charset=utf-8"),
    ("tickets.js", "text/javascript; charset=utf-8"),
    ("waitlist.js", "text/javascript; charset=utf-8"),
    ("portal.js", "text/javascript; charset=utf-8"),
    ("favicon.svg", "image/svg+xml"),
];

const SHELL: &str = include_str!("../../web/shell.html");

/// The paths that are pages of the fan app (everything else is the API).
const PAGES: &[&str] = &[
    "/",
    "/sign-in",
    "/me/tickets",
    "/me/waitlist",
    "/me/orders/{order_id}",
    "/events/{event_id}",
    "/events/{event_id}/seats",
    "/events/{event_id}/resale",
    "/portal",
    "/portal/{*rest}",
];

/// Modules only the operators' pages load: not preloaded for fans.
const NOT_PRELOADED: &[&str] = &["portal.js"];

struct Asset {
    body: &'static [u8],
    content_type: &'static str,
    /// Served under its hashed name: never changes, cache for a year.
    immutable: bool,
}

struct Web {
    assets: HashMap<String, Asset>,
    shell: String,
    csp: String,
}

/// What the pages need to know about this deployment, in the shell.
pub struct WebSettings {
    pub dev_sign_in: bool,
    pub payment_provider: &'static str,
    pub currency: String,
}

impl Web {
    fn new(settings: &WebSettings) -> Web {
        let mut assets = HashMap::new();
        let mut hashed = HashMap::new();
        for (name, body, content_type) in FILES {
            let digest = hex::encode(&Sha256::digest(body)[..6]);
            let (stem, ext) = name.rsplit_once('.').unwrap_or((name, ""));
            let versioned = format!("{stem}.{digest}.{ext}");
            hashed.insert(*name, format!("/assets/{versioned}"));
            assets.insert(
                versioned,
                Asset {
                    body,
                    content_type,
                    immutable: true,
                },
            );
            assets.insert(
                (*name).to_owned(),
                Asset {
                    body,
                    content_type,
                    immutable: false,
                },
            );
        }
        let modules: serde_json::Map<String, serde_json::Value> = FILES
            .iter()
            .filter(|(name, _, _)| name.ends_with(".js"))
            .map(|(name, _, _)| (format!("/assets/{name}"), json!(hashed[name])))
            .collect();
        let import_map = json!({ "imports": modules }).to_string();
        let preloads: String = FILES
            .iter()
            .filter(|(name, _, _)| name.ends_with(".js") && !NOT_PRELOADED.contains(name))
            .map(|(name, _, _)| format!("<link rel=\"modulepreload\" href=\"{}\">", hashed[name]))
            .collect();
        let test_cards = if settings.payment_provider == "sandbox" {
            json!(TEST_CARDS)
        } else {
            json!([])
        };
        let config = json!({
            "dev_sign_in": settings.dev_sign_in,
            "payments": {"provider": settings.payment_provider, "test_cards": test_cards},
            "currency": settings.currency,
        })
        .to_string()
        // Inside a <script> element: "</" would end it early.
        .replace("</", "<\\/");
        let shell = SHELL
            .replace("{{style}}", &hashed["style.css"])
            .replace("{{favicon}}", &hashed["favicon.svg"])
            .replace("{{import_map}}", &import_map)
            .replace("{{preloads}}", &preloads)
            .replace("{{config}}", &config)
            .replace("{{app}}", &hashed["app.js"]);
        let map_hash = base64::engine::general_purpose::STANDARD.encode(Sha256::digest(import_map.as_bytes()));
        let csp = format!(
            "default-src 'self'; script-src 'self' 'sha256-{map_hash}'; style-src 'self'; \
             img-src 'self' data: blob:; connect-src 'self'; object-src 'none'; base-uri 'none'; \
             form-action 'self'; frame-ancestors 'none'"
        );
        Web { assets, shell, csp }
    }

    fn page(&self) -> Response {
        let mut r = (StatusCode::OK, self.shell.clone()).into_response();
        let h = r.headers_mut();
        h.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/html; charset=utf-8"),
        );
        // Small, and it names the current assets: always revalidate.
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
        if let Ok(v) = HeaderValue::from_str(&self.csp) {
            h.insert(header::CONTENT_SECURITY_POLICY, v);
        }
        h.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
        h.insert(header::REFERRER_POLICY, HeaderValue::from_static("same-origin"));
        r
    }

    fn asset(&self, name: &str) -> Response {
        let Some(asset) = self.assets.get(name) else {
            return ApiError::not_found("not_found", "no such asset").into_response();
        };
        let cache = if asset.immutable {
            "public, max-age=31536000, immutable"
        } else {
            "no-cache"
        };
        let mut r = (StatusCode::OK, asset.body).into_response();
        let h = r.headers_mut();
        h.insert(header::CONTENT_TYPE, HeaderValue::from_static(asset.content_type));
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static(cache));
        h.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
        r
    }
}

/// The pages and assets, as routes to merge into the app.
pub fn routes<S: Clone + Send + Sync + 'static>(settings: &WebSettings) -> Router<S> {
    let web = Arc::new(Web::new(settings));
    let mut router = Router::new();
    for page in PAGES {
        let web = web.clone();
        router = router.route(page, get(move || async move { web.page() }));
    }
    router.route(
        "/assets/{file}",
        get(move |Path(file): Path<String>| async move { web.asset(&file) }),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shell_names_hashed_assets_and_allows_only_its_import_map() {
        let web = Web::new(&WebSettings {
            dev_sign_in: true,
            payment_provider: "sandbox",
            currency: "usd".into(),
        });
        assert!(!web.shell.contains("{{"), "every placeholder filled");
        let app = web
            .assets
            .keys()
            .find(|k| k.starts_with("app.") && k.len() > "app.js".len())
            .expect("a hashed app module");
        assert!(web.shell.contains(&format!("/assets/{app}")));
        assert!(
            web.shell.contains("pm_card_declined"),
            "test cards listed for the sandbox"
        );
        assert!(web.csp.contains("script-src 'self' 'sha256-"));
    }
}
