//! `GET /queue/{event}`: the waiting page (`page.html`), with the
//! operator's message for the room.

use std::sync::Arc;

use pingora::proxy::Session;

use crate::queue::Room;
use crate::respond;

pub async fn page(session: &mut Session, room: &Arc<Room>) -> respond::Result<()> {
    let settings = room.settings();
    let hidden = if settings.message.is_empty() { "hidden" } else { "" };
    let html = include_str!("page.html")
        .replace("{{EVENT}}", &room.event.to_string())
        .replace("{{MESSAGE_HIDDEN}}", hidden)
        .replace("{{MESSAGE}}", &html_escape(&settings.message));
    respond::send(session, 200, "text/html; charset=utf-8", html.into(), &[]).await
}

fn html_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}
