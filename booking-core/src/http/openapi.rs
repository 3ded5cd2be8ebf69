//! The OpenAPI 3.1 description, generated from the handlers' annotations and
//! the types they use, served at `/openapi.json`.

use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use crate::http::{
    catalog, fans, health, holds, identity, orders, payments, payouts, portal, seats, tickets, waitlist,
};

#[derive(OpenApi)]
#[openapi(
    info(title = "Usher booking core", description = "Catalog, seat maps, availability, holds, waitlists, orders and tickets; the venue portal for operators (/v1/portal). Errors are RFC 9457 problem details with a stable `code`."),
    paths(
        catalog::search, catalog::event,
        seats::seatmap, seats::availability, seats::seat_changes, seats::prices,
        holds::create, holds::get, holds::release,
        orders::create, orders::get, orders::mine, orders::refund,
        tickets::get, tickets::mine, tickets::qr_svg, tickets::qr_png, tickets::pdf, tickets::keys, tickets::checkin, tickets::transfer,
        tickets::list_for_resale, tickets::listings, tickets::cancel_listing,
        payments::webhook,
        identity::dev_sign_in, identity::me,
        health::healthz, health::readyz,
        portal::sign_in, portal::sign_out, portal::me, portal::venues, portal::import_venue,
        portal::events, portal::event, portal::create_event, portal::update_event,
        portal::waiting_room, portal::put_waiting_room, portal::dashboard, portal::history,
        portal::pricing, portal::put_pricing, portal::refund_order, portal::books_mismatches, portal::resolve_mismatch, portal::fees, portal::put_fees,
        payouts::set_account, payouts::mine, payouts::for_organisation,
        portal::disputes,
        portal::waitlist,
        waitlist::join, waitlist::mine, waitlist::get, waitlist::leave,
        fans::my_data, fans::erase_me, fans::export_for_fan, fans::erase_for_fan, fans::audit_log,
    ),
    modifiers(&FanToken, &IdempotencyKeyFormat),
)]
pub struct ApiDoc;

struct FanToken;

/// Every `Idempotency-Key` header says what a key is (1 to 255 visible
/// ASCII characters, as `IdempotencyKey::parse` takes): clients, and the
/// schema-driven fuzzer, then send keys HTTP can carry. A control
/// character in a header is refused by the HTTP parser itself with a bare
/// 400, before any handler could answer with a problem.
struct IdempotencyKeyFormat;

impl Modify for IdempotencyKeyFormat {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::schema::{ObjectBuilder, Type};
        for item in openapi.paths.paths.values_mut() {
            let operations = [
                &mut item.get,
                &mut item.post,
                &mut item.put,
                &mut item.patch,
                &mut item.delete,
            ];
            for op in operations.into_iter().flatten() {
                for p in op.parameters.iter_mut().flatten() {
                    if p.name == "Idempotency-Key" {
                        p.schema = Some(
                            ObjectBuilder::new()
                                .schema_type(Type::String)
                                .min_length(Some(1))
                                .max_length(Some(255))
                                .pattern(Some("^[!-~]{1,255}$"))
                                .into(),
                        );
                    }
                }
            }
        }
    }
}

impl Modify for FanToken {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "fan_token",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT (EdDSA)")
                    .build(),
            ),
        );
        components.add_security_scheme(
            "operator_token",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("opaque session token from /v1/portal/sign-in")
                    .build(),
            ),
        );
        components.add_security_scheme(
            "scanner_key",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}

pub async fn serve() -> axum::Json<utoipa::openapi::OpenApi> {
    axum::Json(ApiDoc::openapi())
}
