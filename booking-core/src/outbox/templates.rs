//! The fan e-mail of each notification, as text and as HTML. Both are
//! made from the same plain-text pieces (`Body`), and the HTML escapes
//! every piece: event titles, venue names and seats are written by
//! organisers and must never become markup in a fan's mail client.

use std::fmt::Write as _;

/// A message's subject and its two alternative bodies.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mail {
    pub subject: String,
    pub text: String,
    pub html: String,
}

/// What the deliverer looked up for a notification, beyond its payload.
#[derive(Debug, Clone, Default)]
pub struct Context {
    pub event_title: Option<String>,
    /// Already formatted, e.g. `2027-03-01 19:30 UTC`.
    pub starts_at: Option<String>,
    pub venue: Option<String>,
    /// The order's currency (`USD`), for amounts in cents.
    pub currency: Option<String>,
    /// One line per ticket attached (order confirmed): seat and price.
    pub tickets: Vec<String>,
}

/// Plain-text content; `render` turns it into text and escaped HTML.
struct Body {
    heading: String,
    paragraphs: Vec<String>,
    /// A bulleted list (tickets), after the paragraphs.
    items: Vec<String>,
    /// A link button (label, URL), e.g. a sign-in link.
    action: Option<(String, String)>,
}

const FOOTER: &str = "You receive this e-mail because of a ticket order with Usher. Keep it: it is your record.";

/// The mail a fan gets for a topic (operator-only topics get a generic one).
pub fn compose(topic: &str, payload: &serde_json::Value, cx: &Context) -> Mail {
    let order = payload["order_id"].as_str().unwrap_or("");
    let event = match (&cx.event_title, &cx.starts_at) {
        (Some(t), Some(s)) => format!("{t} ({s})"),
        (Some(t), None) => t.clone(),
        _ => "your event".into(),
    };
    let money = |key: &str| cents(payload[key].as_i64().unwrap_or(0), cx.currency.as_deref());
    let (subject, body) = match topic {
        "order.confirmed" => (
            "Your tickets are confirmed",
            Body {
                heading: format!("Your tickets for {event}"),
                paragraphs: vec![
                    format!("Order {order} is confirmed{}.", at_venue(cx)),
                    if cx.tickets.is_empty() {
                        "Your tickets are in the app under My tickets.".into()
                    } else {
                        "Each ticket is attached as a PDF; show its code at the gate, printed or on your phone. \
                         They are also in the app under My tickets."
                            .into()
                    },
                    format!("Total paid: {}.", money("total_cents")),
                ],
                items: cx.tickets.clone(),
                action: None,
            },
        ),
        "payment.failed" => (
            "Your payment did not go through",
            Body {
                heading: "Your payment did not go through".into(),
                paragraphs: vec![format!(
                    "The payment for order {order} ({event}) was declined. Your seats stay held for a few minutes: try another card."
                )],
                items: vec![],
                action: None,
            },
        ),
        "hold.expired" => (
            "Your seats were released before your payment arrived",
            Body {
                heading: "Your seats were released".into(),
                paragraphs: vec![format!(
                    "Your hold for {event} ran out before the payment for order {order} arrived and the seats were sold. \
                     The payment is being refunded in full."
                )],
                items: vec![],
                action: None,
            },
        ),
        "refund.issued" => (
            "Your refund is on its way",
            Body {
                heading: "Your refund is on its way".into(),
                paragraphs: vec![format!(
                    "We refunded {} for order {order} ({event}). It can take a few days to appear on your statement.",
                    money("amount_cents")
                )],
                items: vec![],
                action: None,
            },
        ),
        // Sent to the fan who received the ticket (a transfer or a resale).
        "ticket.transferred" => (
            "A ticket was transferred to you",
            Body {
                heading: format!("You received a ticket for {event}"),
                paragraphs: vec![
                    format!(
                        "Ticket {} is now yours, from {}{}. The earlier holder's code no longer opens the gate.",
                        text_of(&payload["ticket_id"]),
                        text_of(&payload["from_fan_id"]),
                        at_venue(cx)
                    ),
                    if cx.tickets.is_empty() {
                        "It is in the app under My tickets.".into()
                    } else {
                        "It is attached as a PDF with its new code, and in the app under My tickets.".into()
                    },
                ],
                items: cx.tickets.clone(),
                action: None,
            },
        ),
        "dispute.opened" => (
            "Your bank disputed a payment",
            Body {
                heading: "Your bank disputed a payment".into(),
                paragraphs: vec![
                    if payload["voided_ticket_ids"].as_array().is_some_and(|t| !t.is_empty()) {
                        format!(
                            "Your bank told us you disputed the payment for order {order} ({event}). Its tickets are void while \
                             the dispute is open; they become valid again if the dispute is decided for the payment."
                        )
                    } else {
                        format!(
                            "Your bank told us you disputed the payment for order {order} ({event}). If the dispute is decided \
                             against the payment, the order's tickets will be void."
                        )
                    },
                ],
                items: vec![],
                action: None,
            },
        ),
        "dispute.closed" => (
            "Your payment dispute was decided",
            Body {
                heading: "Your payment dispute was decided".into(),
                paragraphs: vec![if payload["status"] == "lost" {
                    format!(
                        "Your bank decided the dispute of the payment for order {order} ({event}) in your favour and returned \
                         the money. The order's tickets are void."
                    )
                } else {
                    format!(
                        "Your bank decided the dispute of the payment for order {order} ({event}) in favour of the payment. \
                         The order's tickets are valid."
                    )
                }],
                items: vec![],
                action: None,
            },
        ),
        "waitlist.offer" => (
            "Seats from the waitlist are held for you",
            Body {
                heading: format!("Seats for {event} are held for you"),
                paragraphs: vec![
                    format!(
                        "{} seat(s) came back and are held for you until {} (UTC), at {} in all.",
                        text_of(&payload["quantity"]),
                        payload["expires_at"].as_str().unwrap_or(""),
                        money("total_cents")
                    ),
                    format!(
                        "Buy them from your waitlist page (hold {}); after that they go to the next fan in line.",
                        payload["hold_id"].as_str().unwrap_or("")
                    ),
                ],
                items: vec![],
                action: None,
            },
        ),
        other => (
            "Usher notification",
            Body {
                heading: format!("Usher: {other}"),
                paragraphs: vec![payload.to_string()],
                items: vec![],
                action: None,
            },
        ),
    };
    render(subject.into(), body)
}

/// The mail with a one-time sign-in link, for when fans sign in by e-mail
/// (not yet: identity comes from the provider's tokens today).
pub fn sign_in_link(link: &str, valid_minutes: u32) -> Mail {
    render(
        "Your Usher sign-in link".into(),
        Body {
            heading: "Sign in to Usher".into(),
            paragraphs: vec![format!(
                "Use the link below within {valid_minutes} minutes to sign in. If you did not ask for it, ignore this e-mail: \
                 nobody can sign in without it."
            )],
            items: vec![],
            action: Some(("Sign in".into(), link.into())),
        },
    )
}

fn at_venue(cx: &Context) -> String {
    cx.venue.as_deref().map(|v| format!(" (at {v})")).unwrap_or_default()
}

/// A JSON value as a fan reads it: strings without their quotes.
fn text_of(v: &serde_json::Value) -> String {
    v.as_str().map(str::to_owned).unwrap_or_else(|| v.to_string())
}

/// An amount in the currency's minor units as a fan reads it: `3450` USD
/// as `34.50 USD`, JPY as `3450 JPY`, KWD as `3.450 KWD` (`34.50` if the
/// currency is unknown).
fn cents(amount: i64, currency: Option<&str>) -> String {
    match currency {
        Some(c) => format!(
            "{} {}",
            crate::pricing::currency::format(amount, c),
            c.to_ascii_uppercase()
        ),
        None => crate::pricing::currency::format(amount, "usd"),
    }
}

fn render(subject: String, body: Body) -> Mail {
    let mut text = format!("{}\n\n", body.heading);
    for p in &body.paragraphs {
        let _ = write!(text, "{p}\n\n");
    }
    for i in &body.items {
        let _ = writeln!(text, "  - {i}");
    }
    if !body.items.is_empty() {
        text.push('\n');
    }
    if let Some((label, url)) = &body.action {
        let _ = write!(text, "{label}: {url}\n\n");
    }
    text.push_str("-- \n");
    text.push_str(FOOTER);
    text.push('\n');

    let mut html = String::with_capacity(2048);
    let _ = write!(
        html,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>{}</title></head>\n\
         <body style=\"margin:0;padding:24px;background:#f4f4f5;font-family:Helvetica,Arial,sans-serif;color:#18181b\">\n\
         <div style=\"max-width:560px;margin:0 auto;background:#fff;border-radius:8px;padding:24px\">\n\
         <h1 style=\"font-size:20px;margin:0 0 16px\">{}</h1>\n",
        escape(&subject),
        escape(&body.heading)
    );
    for p in &body.paragraphs {
        let _ = writeln!(html, "<p style=\"line-height:1.5\">{}</p>", escape(p));
    }
    if !body.items.is_empty() {
        html.push_str("<ul style=\"line-height:1.5\">\n");
        for i in &body.items {
            let _ = writeln!(html, "<li>{}</li>", escape(i));
        }
        html.push_str("</ul>\n");
    }
    if let Some((label, url)) = &body.action {
        let _ = writeln!(
            html,
            "<p><a href=\"{}\" style=\"display:inline-block;padding:10px 16px;background:#2563eb;color:#fff;\
             border-radius:6px;text-decoration:none\">{}</a></p>",
            escape(url),
            escape(label)
        );
    }
    let _ = write!(
        html,
        "<p style=\"color:#71717a;font-size:12px;margin-top:24px\">{}</p>\n</div></body></html>\n",
        escape(FOOTER)
    );
    Mail { subject, text, html }
}

/// Text made safe for HTML content and quoted attribute values.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 16);
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const TOPICS: [&str; 8] = [
        "order.confirmed",
        "payment.failed",
        "hold.expired",
        "refund.issued",
        "ticket.transferred",
        "dispute.opened",
        "dispute.closed",
        "waitlist.offer",
    ];

    #[test]
    fn every_fan_topic_has_both_bodies_and_no_value_becomes_markup() {
        let hostile = "<script>alert('x')</script> & \"Friends\"";
        let cx = Context {
            event_title: Some(hostile.into()),
            starts_at: Some("2027-03-01 19:30 UTC".into()),
            venue: Some("<img src=x onerror=alert(1)>".into()),
            currency: Some("EUR".into()),
            tickets: vec![format!("Section <b>A</b>, row 1, seat 2: {hostile}")],
        };
        let payload = json!({"order_id": "o-1", "total_cents": 3450, "amount_cents": 1000,
            "ticket_id": "<t>", "from_fan_id": "a", "to_fan_id": "b", "quantity": 2,
            "expires_at": "2027-01-01T00:00:00Z", "hold_id": "h-1"});
        for topic in TOPICS {
            let m = compose(topic, &payload, &cx);
            assert!(!m.subject.starts_with("Usher"), "{topic} has no template");
            assert!(m.text.contains(hostile), "{topic}: the text keeps the title as written");
            assert!(
                m.html
                    .contains("&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; &amp; &quot;Friends&quot;"),
                "{topic}"
            );
            for markup in ["<script", "<img", "<b>", "<t>"] {
                assert!(!m.html.contains(markup), "{topic}: {markup} in {}", m.html);
            }
        }
        let m = compose("order.confirmed", &payload, &cx);
        assert!(
            m.text.contains("34.50 EUR") && m.text.contains("attached as a PDF"),
            "{}",
            m.text
        );
    }

    #[test]
    fn a_sign_in_link_is_an_escaped_attribute() {
        let m = sign_in_link("https://usher.example/in?t=a&u=\"><script>", 15);
        assert!(
            m.html
                .contains("href=\"https://usher.example/in?t=a&amp;u=&quot;&gt;&lt;script&gt;\""),
            "{}",
            m.html
        );
        assert!(m.text.contains("https://usher.example/in?t=a&u=\"><script>"));
    }

    #[test]
    fn amounts_read_as_money() {
        assert_eq!(cents(3450, Some("USD")), "34.50 USD");
        assert_eq!(cents(5, None), "0.05");
        assert_eq!(cents(-120, Some("EUR")), "-1.20 EUR");
    }
}
