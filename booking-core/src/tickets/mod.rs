//! Tickets: one per sold seat, issued in the transaction that sells it,
//! with a signed QR code (see `qr.rs`), rendered by `render.rs`, checked in
//! once at the gate (`checkin.rs`), and passed between fans
//! (`transfers.rs`) under the event's after-sale policy (`policy.rs`).

pub mod checkin;
pub mod policy;
pub mod qr;
pub mod render;
pub mod resale;
pub mod transfers;

use chrono::{DateTime, Utc};
use rand::RngCore;
use serde::Serialize;
use sqlx::{PgConnection, PgPool};

use crate::ids::{Cents, EventId, FanId, OrderId, SeatId, TicketId};

pub use checkin::{CheckIn, CheckInError};
pub use qr::TicketSigner;
pub use resale::{ListRequest, Listing, ResaleError};
pub use transfers::{Transfer, TransferError, TransferRequest};

/// A ticket as its owner sees it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Ticket {
    pub ticket_id: TicketId,
    pub order_id: OrderId,
    pub event_id: EventId,
    pub seat_id: SeatId,
    pub price_cents: Cents,
    /// `valid`, `refunded`, `void`, or `voided_disputed` (the payment was
    /// disputed at the fan's bank: refused at the gate; valid again if the
    /// dispute is decided for the payment).
    pub state: String,
    pub version: i32,
    /// The static signed code, for the QR.
    pub code: String,
    pub issued_at: DateTime<Utc>,
    pub checked_in_at: Option<DateTime<Utc>>,
}

#[derive(Debug, thiserror::Error)]
pub enum TicketError {
    #[error("no such ticket")]
    NotFound,
    #[error("storage failure: {0}")]
    Storage(#[from] sqlx::Error),
}

/// Issues one ticket per seat of a sold order, inside the selling
/// transaction. The `one_ticket_per_seat` index refuses a second valid
/// ticket for any seat, which aborts the whole sale.
pub async fn issue(
    tx: &mut PgConnection,
    order: OrderId,
    event: EventId,
    owner: &FanId,
    seats: &[SeatId],
    prices: &[i64],
) -> Result<Vec<TicketId>, sqlx::Error> {
    let ids: Vec<uuid::Uuid> = seats.iter().map(|_| TicketId::new().0).collect();
    let secrets: Vec<Vec<u8>> = seats
        .iter()
        .map(|_| {
            let mut s = vec![0u8; 32];
            rand::rngs::OsRng.fill_bytes(&mut s);
            s
        })
        .collect();
    let seat_ids: Vec<i64> = seats.iter().map(|s| s.0).collect();
    sqlx::query!(
        r#"INSERT INTO tickets (id, order_id, event_id, seat_id, owner_fan_id, price_cents, secret)
           SELECT t.id, $1, $2, t.seat_id, $3, t.price, t.secret
           FROM unnest($4::uuid[], $5::bigint[], $6::bigint[], $7::bytea[]) AS t(id, seat_id, price, secret)"#,
        order.0,
        event.0,
        owner.as_str(),
        &ids,
        &seat_ids,
        prices,
        &secrets,
    )
    .execute(tx)
    .await?;
    Ok(ids.into_iter().map(TicketId).collect())
}

/// One of the fan's tickets, with its current code.
pub async fn get(pool: &PgPool, signer: &TicketSigner, owner: &FanId, ticket: TicketId) -> Result<Ticket, TicketError> {
    let (t, _) = get_with_secret(pool, signer, owner, ticket).await?;
    Ok(t)
}

/// The ticket and its rotating-code secret (never sent except as codes).
pub async fn get_with_secret(
    pool: &PgPool,
    signer: &TicketSigner,
    owner: &FanId,
    ticket: TicketId,
) -> Result<(Ticket, Vec<u8>), TicketError> {
    let r = sqlx::query!(
        r#"SELECT id, order_id, event_id, seat_id, price_cents, state, version, secret, issued_at, checked_in_at
           FROM tickets WHERE id = $1 AND owner_fan_id = $2"#,
        ticket.0,
        owner.as_str()
    )
    .fetch_optional(pool)
    .await?
    .ok_or(TicketError::NotFound)?;
    let (event, seat) = (EventId(r.event_id), SeatId(r.seat_id));
    Ok((
        Ticket {
            ticket_id: ticket,
            order_id: OrderId(r.order_id),
            event_id: event,
            seat_id: seat,
            price_cents: Cents(r.price_cents),
            code: signer.code(ticket, event, seat, r.version),
            state: r.state,
            version: r.version,
            issued_at: r.issued_at,
            checked_in_at: r.checked_in_at,
        },
        r.secret,
    ))
}

/// The fan's tickets (bought or received), newest first.
pub async fn list(pool: &PgPool, signer: &TicketSigner, owner: &FanId) -> Result<Vec<Ticket>, TicketError> {
    let rows = sqlx::query!(
        r#"SELECT id, order_id, event_id, seat_id, price_cents, state, version, issued_at, checked_in_at
           FROM tickets WHERE owner_fan_id = $1 ORDER BY issued_at DESC, id LIMIT 500"#,
        owner.as_str()
    )
    .fetch_all(pool)
    .await?;
    Ok(rows
        .into_iter()
        .map(|r| {
            let (ticket, event, seat) = (TicketId(r.id), EventId(r.event_id), SeatId(r.seat_id));
            Ticket {
                ticket_id: ticket,
                order_id: OrderId(r.order_id),
                event_id: event,
                seat_id: seat,
                price_cents: Cents(r.price_cents),
                code: signer.code(ticket, event, seat, r.version),
                state: r.state,
                version: r.version,
                issued_at: r.issued_at,
                checked_in_at: r.checked_in_at,
            }
        })
        .collect())
}

/// Why a ticket's PDF could not be made.
#[derive(Debug, thiserror::Error)]
pub enum PdfError {
    #[error(transparent)]
    Ticket(#[from] TicketError),
    #[error(transparent)]
    Render(#[from] render::RenderError),
}

/// One of the fan's tickets as its printable PDF (face and current code):
/// what the download (`GET /v1/tickets/{id}/pdf`) serves and what the
/// order-confirmed e-mail attaches.
pub async fn pdf(
    pool: &PgPool,
    signer: &TicketSigner,
    owner: &FanId,
    ticket: TicketId,
) -> Result<(Ticket, Face, Vec<u8>), PdfError> {
    let t = get(pool, signer, owner, ticket).await?;
    let face = face(pool, ticket).await?;
    let starts = face.starts_at.format("%Y-%m-%d %H:%M UTC").to_string();
    let holder = format!("Ticket holder: {owner}");
    let ticket_id = format!("Ticket {}", t.ticket_id);
    let doc = render::pdf(
        &t.code,
        &render::TicketFace {
            title: &face.title,
            starts_at: &starts,
            venue: &face.venue,
            seat: &face.seat,
            price: &face.price,
            ticket_id: &ticket_id,
            holder: &holder,
        },
    )?;
    Ok((t, face, doc))
}

/// An order's tickets that its fan still holds and that are valid, in
/// seat order: the ones the order-confirmed e-mail attaches (a ticket
/// passed on since is the new holder's).
pub async fn held_of_order(pool: &PgPool, order: OrderId, owner: &FanId) -> Result<Vec<TicketId>, sqlx::Error> {
    let ids: Vec<uuid::Uuid> = sqlx::query_scalar(
        "SELECT id FROM tickets WHERE order_id = $1 AND owner_fan_id = $2 AND state = 'valid' ORDER BY seat_id",
    )
    .bind(order.0)
    .bind(owner.as_str())
    .fetch_all(pool)
    .await?;
    Ok(ids.into_iter().map(TicketId).collect())
}

/// What a printed ticket shows, besides its code.
pub struct Face {
    pub title: String,
    pub starts_at: DateTime<Utc>,
    pub venue: String,
    pub seat: String,
    /// What was paid for it: its price, fees and taxes in the event's
    /// currency (`price_line`).
    pub price: String,
}

pub async fn face(pool: &PgPool, ticket: TicketId) -> Result<Face, TicketError> {
    let r = sqlx::query!(
        r#"SELECT e.title, e.starts_at, v.name AS venue, sc.code AS section, s.row_label, s.label AS seat
           FROM tickets t
           JOIN events e ON e.id = t.event_id
           JOIN venues v ON v.id = e.venue_id
           JOIN seats s ON s.id = t.seat_id
           JOIN sections sc ON sc.id = s.section_id
           WHERE t.id = $1"#,
        ticket.0
    )
    .fetch_optional(pool)
    .await?
    .ok_or(TicketError::NotFound)?;
    Ok(Face {
        title: r.title,
        starts_at: r.starts_at,
        venue: r.venue,
        seat: format!("Section {}, row {}, seat {}", r.section, r.row_label, r.seat),
        price: price_line(pool, ticket).await?,
    })
}

/// The ticket's own lines as one line of text: `Price 30.00 + fees 4.00 +
/// tax 3.40 = 37.40 USD` (tax added), `Price 30.00 + fees 2.50 = 32.50 KWD
/// (incl. tax 5.42)` (tax included), or `Price 30.00 USD` without fees.
async fn price_line(pool: &PgPool, ticket: TicketId) -> Result<String, TicketError> {
    use sqlx::Row;
    let r = sqlx::query(
        r#"SELECT t.seat_id, t.price_cents, o.currency, o.charge_lines
           FROM tickets t JOIN orders o ON o.id = t.order_id WHERE t.id = $1"#,
    )
    .bind(ticket.0)
    .fetch_one(pool)
    .await?;
    let seat: i64 = r.try_get("seat_id")?;
    let price: i64 = r.try_get("price_cents")?;
    let currency: String = r.try_get("currency")?;
    let lines: Option<sqlx::types::Json<crate::pricing::fees::Charges>> = r.try_get("charge_lines")?;
    let money = |m: i64| crate::pricing::currency::format(m, &currency);
    let code = currency.to_ascii_uppercase();
    let Some(line) = lines.and_then(|c| {
        let inclusive = c.0.tax_inclusive;
        c.0.tickets
            .into_iter()
            .find(|t| t.seat_id == seat)
            .map(|t| (t, inclusive))
    }) else {
        return Ok(format!("Price {} {code}", money(price)));
    };
    let (t, inclusive) = line;
    let fees = t.service_fee_cents + t.facility_fee_cents;
    let tax = t.price_tax_cents + t.fee_tax_cents;
    Ok(if inclusive {
        format!(
            "Price {} + fees {} = {} {code} (incl. tax {})",
            money(t.price_cents),
            money(fees),
            money(t.price_cents + fees),
            money(tax)
        )
    } else {
        format!(
            "Price {} + fees {} + tax {} = {} {code}",
            money(t.price_cents),
            money(fees),
            money(tax),
            money(t.price_cents + fees + tax)
        )
    })
}
