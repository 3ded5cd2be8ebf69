//! What the edge tells a fan when no core gave an answer: each kind of
//! failure a problem with its status and a stable code, saying whether
//! anything reached a core (so whether sending again is safe).

/// The status, code and detail for a failed proxying; `None` when the
/// client itself went away and there is nobody to answer.
pub(super) fn answer(e: &pingora::Error) -> Option<(u16, &'static str, &'static str)> {
    use pingora::ErrorType as E;
    Some(match e.etype() {
        E::HTTPStatus(status) => (*status, "edge_error", "the edge could not complete this request"),
        E::ConnectNoRoute => (
            503,
            "no_ready_core",
            "no booking-core is ready to serve this right now (the database may be failing over); nothing was sent, try again shortly",
        ),
        E::ConnectTimedout | E::ConnectRefused | E::ConnectError | E::TLSHandshakeFailure => (
            503,
            "core_unreachable",
            "no booking-core took the request; nothing was sent, try again shortly",
        ),
        E::ReadTimedout | E::WriteTimedout => (
            504,
            "core_timeout",
            "the booking-core stopped answering; the request may or may not have been done: retry with the same Idempotency-Key",
        ),
        _ if e.esource() == &pingora::ErrorSource::Downstream => return None,
        _ => (
            502,
            "bad_gateway",
            "the booking-core's answer was cut off; retry with the same Idempotency-Key",
        ),
    })
}
