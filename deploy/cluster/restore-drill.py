"""The restore drill's client: venues/events in the import format, and
confirmed orders made through the public API like a fan's (dev sign-in,
a hold, an order paid with the sandbox's pm_card_ok)."""
import json, sys, time, urllib.error, urllib.request, uuid


def chart_and_event(slug, seats):
    rows = []
    per_row = 20
    for r in range((seats + per_row - 1) // per_row):
        n = min(per_row, seats - r * per_row)
        rows.append({"label": str(r + 1), "seats": [
            {"number": i + 1, "x": float(i), "y": float(r + 2), "tier": 1,
             "accessible": False, "obstructed": False} for i in range(n)]})
    chart = {"slug": slug, "name": "Restore drill hall", "city": "Testville", "country": "GB",
             "timezone": "Europe/London", "focal": {"x": 10.0, "y": 0.0},
             "sections": [{"code": "D", "name": "Drill", "rows": rows}]}
    now = time.time()
    iso = lambda t: time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t))
    event = {"slug": slug, "venue_slug": slug, "title": f"Restore drill {slug}", "artist": "The Restored",
             "category": "concert", "description": "Orders made by deploy/cluster/restore-drill.",
             "starts_at": iso(now + 30 * 86400), "on_sale_at": iso(now - 60),
             "rules": {"hold_ttl_secs": 300, "hold_jitter_secs": 0, "max_seats_per_fan": 4,
                       "protected": False},
             "tiers": [{"tier": 1, "name": "Drill", "price_cents": 1000}]}
    return chart, event


def call(method, url, body=None, token=None, key=None, timeout=15):
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, method=method)
    req.add_header("user-agent", "usher-restore-drill")
    if data is not None:
        req.add_header("content-type", "application/json")
    if token:
        req.add_header("authorization", f"Bearer {token}")
    if key:
        req.add_header("idempotency-key", key)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, json.loads(r.read() or b"null")
    except urllib.error.HTTPError as e:
        try:
            return e.code, json.loads(e.read() or b"null")
        except ValueError:
            return e.code, None


def buy(base, event, fan):
    """One confirmed order: prints `order_id acked_ms ticket,ticket`."""
    s, b = call("POST", f"{base}/v1/dev/sign-in", {"fan_id": fan})
    if s != 200:
        raise SystemExit(f"sign-in answered {s}: {b}")
    token = b["token"]
    for attempt in range(5):
        s, h = call("POST", f"{base}/v1/events/{event}/holds", {"best_available": {"quantity": 1}},
                    token, str(uuid.uuid4()))
        if s == 201:
            break
        time.sleep(1)
    else:
        raise SystemExit(f"hold answered {s}: {h}")
    key = str(uuid.uuid4())
    # A card of the fan's own (the sandbox takes any pm_card_ok...): one
    # card may pay for only max_seats_per_fan seats of an event.
    body = {"hold_id": h["hold_id"], "payment_method": f"pm_card_ok_{fan}"}
    for attempt in range(5):
        s, o = call("POST", f"{base}/v1/orders", body, token, key)
        if s in (200, 201, 202):
            break
        time.sleep(1)  # a retry with the same key: the first answer, never a second order
    else:
        raise SystemExit(f"order answered {s}: {o}")
    deadline = time.time() + 60
    while o.get("state") != "confirmed":
        if o.get("state") in ("payment_failed", "refunding", "refunded") or time.time() > deadline:
            raise SystemExit(f"order {o.get('order_id')} ended {o.get('state')}")
        time.sleep(0.3)
        s, o = call("GET", f"{base}/v1/orders/{o['order_id']}", token=token)
    acked = int(time.time() * 1000)
    tickets = ",".join(sorted(t["ticket_id"] if isinstance(t, dict) else str(t) for t in o["tickets"]))
    print(o["order_id"], acked, tickets, flush=True)


if __name__ == "__main__":
    cmd = sys.argv[1]
    if cmd == "chart":
        chart, event = chart_and_event(sys.argv[2], int(sys.argv[3]))
        json.dump(chart, open(sys.argv[4], "w"))
        json.dump(event, open(sys.argv[5], "w"))
    elif cmd == "buy":
        buy(sys.argv[2], sys.argv[3], sys.argv[4])
