// seatmap.js: the seat map, drawn on a canvas. Why a canvas: a 50,000-seat
// stadium as DOM or SVG nodes is 50,000 elements to lay out and keep live;
// on a canvas a full redraw of the visible seats is a few milliseconds, and
// seats are plain typed arrays indexed in seat-map order (the order of the
// availability bitmap). Zoomed out it is an overview by section (seats left,
// price); zoomed in, seats. Shapes, not only colours, tell seats apart:
// accessible seats are squares, obstructed-view seats triangles, seats that
// are gone small hollow rings, selected seats carry a ring. The map works by
// keyboard (arrow keys move between seats, Enter selects), and a plain list of
// sections and seats follows it for screen readers.

import { el, money, tierColour } from "/assets/api.js";

const ACCESSIBLE = 1, OBSTRUCTED = 2;
const AVAILABLE = 0, HELD = 1, SOLD = 2, UNKNOWN = 3;

export class SeatMap {
  /// doc: the venue's seat map document; opts: { tierName(t), price(t),
  /// maxSelect, onSelectionChange(), onFocusSeat(i) }.
  constructor(doc, opts) {
    this.opts = opts;
    this.load(doc);
    this.states = new Uint8Array(this.n).fill(UNKNOWN);
    this.selected = new Set();
    this.mine = new Set();
    this.focus = -1;
    this.view = { k: 1, tx: 0, ty: 0 };
    this.dirty = false;
    this.fitted = false;
    this.build();
    performance.mark("seatmap-built");
  }

  // Typed arrays in seat-map order; rows and sections as index ranges.
  load(doc) {
    const n = doc.seat_count;
    this.n = n;
    this.ids = new Int32Array(n);
    this.xs = new Float32Array(n);
    this.ys = new Float32Array(n);
    this.tier = new Int16Array(n);
    this.flags = new Uint8Array(n);
    this.rowOf = new Int32Array(n);
    this.labels = new Array(n);
    this.rows = [];
    this.sections = [];
    this.index = new Map();
    let i = 0;
    doc.sections.forEach((s, si) => {
      const section = { code: s.code, name: s.name, start: i, rows: [], tiers: new Map(), available: 0, total: 0,
        minx: Infinity, miny: Infinity, maxx: -Infinity, maxy: -Infinity };
      for (const r of s.rows) {
        const row = { section: si, label: r.label, start: i, end: i + r.seats.length };
        section.rows.push(this.rows.length);
        this.rows.push(row);
        for (const [id, label, x, y, tier, flags] of r.seats) {
          this.ids[i] = id; this.xs[i] = x; this.ys[i] = y; this.tier[i] = tier; this.flags[i] = flags;
          this.labels[i] = label; this.rowOf[i] = this.rows.length - 1; this.index.set(id, i);
          section.tiers.set(tier, (section.tiers.get(tier) || 0) + 1);
          section.minx = Math.min(section.minx, x); section.maxx = Math.max(section.maxx, x);
          section.miny = Math.min(section.miny, y); section.maxy = Math.max(section.maxy, y);
          i++;
        }
      }
      section.end = i;
      section.total = i - section.start;
      section.mainTier = [...section.tiers.entries()].sort((a, b) => b[1] - a[1])[0]?.[0] ?? 1;
      section.hull = hull(this.xs, this.ys, section.start, section.end);
      // The side of a square of the section's area: room for a label.
      section.size = Math.sqrt(Math.abs(area(section.hull)));
      section.cx = (section.minx + section.maxx) / 2;
      section.cy = (section.miny + section.maxy) / 2;
      this.sections.push(section);
    });
    this.focal = doc.focal;
    // Typical distance between neighbours in a row: how big a seat may be drawn.
    let sum = 0, count = 0;
    for (const row of this.rows) {
      for (let j = row.start + 1; j < row.end && count < 2000; j++) {
        sum += Math.hypot(this.xs[j] - this.xs[j - 1], this.ys[j] - this.ys[j - 1]);
        count++;
      }
      if (count >= 2000) break;
    }
    this.gap = count ? sum / count : 1;
    this.bounds = { minx: Infinity, miny: Infinity, maxx: -Infinity, maxy: -Infinity };
    for (const s of this.sections) {
      this.bounds.minx = Math.min(this.bounds.minx, s.minx); this.bounds.maxx = Math.max(this.bounds.maxx, s.maxx);
      this.bounds.miny = Math.min(this.bounds.miny, s.miny); this.bounds.maxy = Math.max(this.bounds.maxy, s.maxy);
    }
    // A grid over the venue for hit-testing a tap without scanning every seat.
    this.cell = this.gap * 4;
    this.grid = new Map();
    for (let j = 0; j < n; j++) {
      const key = this.cellKey(Math.floor(this.xs[j] / this.cell), Math.floor(this.ys[j] / this.cell));
      let bucket = this.grid.get(key);
      if (!bucket) this.grid.set(key, (bucket = []));
      bucket.push(j);
    }
  }

  cellKey(cx, cy) { return cx * 1000003 + cy; }

  build() {
    this.canvas = el("canvas", {
      tabindex: "0", role: "application", "aria-roledescription": "seat map",
      "aria-label": "Seat map. Arrow keys move between seats; Enter or Space selects; Page Up and Page Down change section; plus and minus zoom; Home shows the whole venue.",
      "aria-describedby": "map-status",
    });
    this.status = el("div", { id: "map-status", class: "map-status", "aria-live": "polite" }, "Loading seats…");
    const tool = (label, text, fn) => el("button", { type: "button", "aria-label": label, title: label, onclick: fn }, text);
    this.tools = el("div", { class: "map-tools" },
      tool("Zoom in", "+", () => this.zoomBy(1.6)),
      tool("Zoom out", "−", () => this.zoomBy(1 / 1.6)),
      tool("Whole venue", "⤢", () => this.fit()));
    this.list = this.buildList();
    this.element = el("div", {}, el("div", { class: "map-wrap" }, this.canvas, this.tools, this.status), this.list);
    this.ctx = this.canvas.getContext("2d");
    new ResizeObserver(() => this.resize()).observe(this.canvas);
    this.bindPointer();
    this.canvas.addEventListener("keydown", (e) => this.onKey(e));
    this.canvas.addEventListener("focus", () => { if (this.focus < 0) this.moveFocus(this.firstAvailable(0)); });
  }

  // ---- state ---------------------------------------------------------------

  /// Every seat's state from the packed base64 bitmap (2 bits a seat).
  setSnapshot(base64) {
    const bytes = Uint8Array.from(atob(base64), (c) => c.charCodeAt(0));
    for (let i = 0; i < this.n; i++) this.states[i] = (bytes[i >> 2] >> ((i & 3) * 2)) & 3;
    const lost = this.dropUnavailableSelections();
    this.recount();
    this.request();
    if (!this.ready) {
      this.ready = true;
      this.say(`${this.availableCount().toLocaleString()} seats available. Select seats on the map, or use the list below it.`);
      this.opts.onReady?.();
    }
    return lost;
  }

  /// `{available: [ids], held: [ids], sold: [ids]}`; returns selected seats
  /// someone else just took.
  applyBatch(batch) {
    const set = (ids, state) => {
      for (const id of ids || []) {
        const i = this.index.get(id);
        if (i !== undefined) this.states[i] = state;
      }
    };
    set(batch.available, AVAILABLE);
    set(batch.held, HELD);
    set(batch.sold, SOLD);
    const lost = this.dropUnavailableSelections();
    this.recount();
    this.request();
    this.syncList();
    return lost;
  }

  dropUnavailableSelections() {
    const lost = [];
    for (const i of this.selected) if (this.states[i] !== AVAILABLE) { this.selected.delete(i); lost.push(i); }
    if (lost.length) this.opts.onSelectionChange?.();
    return lost;
  }

  recount() {
    for (const s of this.sections) {
      let a = 0;
      for (let i = s.start; i < s.end; i++) if (this.states[i] === AVAILABLE) a++;
      s.available = a;
    }
    for (const s of this.sections) if (s.summary) s.summary.textContent = this.sectionText(s);
  }

  availableCount() { return this.sections.reduce((n, s) => n + s.available, 0); }
  isAvailable(i) { return this.states[i] === AVAILABLE; }

  toggle(i) {
    if (i < 0) return;
    if (this.selected.has(i)) {
      this.selected.delete(i);
      this.say(`Removed ${this.describe(i)}. ${this.selected.size} selected.`);
    } else if (!this.isAvailable(i)) {
      this.say(`${this.describe(i)} is not available.`);
      return;
    } else if (this.selected.size >= (this.opts.maxSelect || 8)) {
      this.say(`You can select up to ${this.opts.maxSelect} seats.`);
      return;
    } else {
      this.selected.add(i);
      this.say(`Selected ${this.describe(i)}. ${this.selected.size} selected.`);
    }
    this.opts.onSelectionChange?.();
    this.request();
    this.syncList();
  }

  clearSelection() { this.selected.clear(); this.opts.onSelectionChange?.(); this.request(); this.syncList(); }

  /// Seats held by this fan: drawn as theirs, not as taken.
  setMine(ids) {
    this.mine = new Set(ids.map((id) => this.index.get(id)).filter((i) => i !== undefined));
    this.request();
  }

  seat(i) {
    const row = this.rows[this.rowOf[i]];
    const section = this.sections[row.section];
    return { index: i, id: this.ids[i], section: section.name, row: row.label, label: this.labels[i], tier: this.tier[i],
      accessible: !!(this.flags[i] & ACCESSIBLE), obstructed: !!(this.flags[i] & OBSTRUCTED) };
  }

  /// "Section, row R, seat N": where a seat is, for messages and labels.
  place(i) {
    const s = this.seat(i);
    return `${s.section}, row ${s.row}, seat ${s.label}`;
  }

  describe(i) {
    const s = this.seat(i);
    const state = this.mine.has(i) ? "held for you" : ["available", "held by someone", "sold", "loading"][this.states[i]];
    const extra = [s.accessible && "wheelchair accessible", s.obstructed && "obstructed view"].filter(Boolean).join(", ");
    return `${this.place(i)}, ${this.opts.tierName(s.tier)} ${money(this.opts.price(s.tier))}, ${state}${extra ? `, ${extra}` : ""}`;
  }

  say(text) { this.status.textContent = text; }

  // ---- view ----------------------------------------------------------------

  resize() {
    const dpr = window.devicePixelRatio || 1;
    const w = this.canvas.clientWidth, h = this.canvas.clientHeight;
    if (!w || !h) return;
    this.canvas.width = Math.round(w * dpr);
    this.canvas.height = Math.round(h * dpr);
    if (!this.fitted) this.fit();
    this.request();
  }

  fit() {
    const w = this.canvas.clientWidth, h = this.canvas.clientHeight, b = this.bounds;
    if (!w || !h) return;
    const pad = 16;
    const k = Math.min((w - 2 * pad) / (b.maxx - b.minx || 1), (h - 2 * pad) / (b.maxy - b.miny || 1));
    this.view = { k, tx: w / 2 - k * (b.minx + b.maxx) / 2, ty: h / 2 - k * (b.miny + b.maxy) / 2 };
    this.fitted = true;
    this.request();
  }

  zoomBy(f, sx = this.canvas.clientWidth / 2, sy = this.canvas.clientHeight / 2) {
    const v = this.view;
    const k = Math.min(Math.max(v.k * f, this.minK()), 60 / this.gap);
    v.tx = sx - (sx - v.tx) * (k / v.k);
    v.ty = sy - (sy - v.ty) * (k / v.k);
    v.k = k;
    this.request();
  }

  minK() {
    const b = this.bounds;
    return 0.5 * Math.min(this.canvas.clientWidth / (b.maxx - b.minx || 1), this.canvas.clientHeight / (b.maxy - b.miny || 1));
  }

  seatMode() { return this.view.k * this.gap >= 5; }

  zoomToSection(s) {
    const w = this.canvas.clientWidth, h = this.canvas.clientHeight;
    let k = 0.85 * Math.min(w / (s.maxx - s.minx || 1), h / (s.maxy - s.miny || 1));
    k = Math.min(Math.max(k, 7 / this.gap), 60 / this.gap);
    this.view = { k, tx: w / 2 - k * s.cx, ty: h / 2 - k * s.cy };
    this.request();
  }

  /// Keeps seat i on screen, zoomed in far enough to see seats.
  reveal(i) {
    const w = this.canvas.clientWidth, h = this.canvas.clientHeight, v = this.view;
    if (!this.seatMode()) { this.zoomToSection(this.sections[this.rows[this.rowOf[i]].section]); return; }
    const sx = this.xs[i] * v.k + v.tx, sy = this.ys[i] * v.k + v.ty;
    if (sx < 30 || sy < 30 || sx > w - 60 || sy > h - 30) {
      v.tx += w / 2 - sx;
      v.ty += h / 2 - sy;
      this.request();
    }
  }

  toVenue(sx, sy) { const v = this.view; return [(sx - v.tx) / v.k, (sy - v.ty) / v.k]; }

  // ---- drawing -------------------------------------------------------------

  request() {
    if (this.dirty) return;
    this.dirty = true;
    requestAnimationFrame(() => { this.dirty = false; this.draw(); });
  }

  draw() {
    const ctx = this.ctx, dpr = window.devicePixelRatio || 1;
    const w = this.canvas.clientWidth, h = this.canvas.clientHeight, v = this.view;
    ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
    ctx.clearRect(0, 0, w, h);
    // The stage (the venue's focal point).
    const fx = this.focal.x * v.k + v.tx, fy = this.focal.y * v.k + v.ty;
    ctx.fillStyle = "#1a1a1a";
    ctx.font = "600 13px system-ui, sans-serif";
    ctx.textAlign = "center";
    ctx.textBaseline = "middle";
    ctx.fillText("STAGE", fx, fy);
    if (this.seatMode()) this.drawSeats(ctx, w, h); else this.drawOverview(ctx);
  }

  drawOverview(ctx) {
    const v = this.view;
    for (const s of this.sections) {
      ctx.beginPath();
      s.hull.forEach(([x, y], j) => (j ? ctx.lineTo : ctx.moveTo).call(ctx, x * v.k + v.tx, y * v.k + v.ty));
      ctx.closePath();
      const soldOut = this.ready && s.available === 0;
      ctx.fillStyle = soldOut ? "#d9d9d9" : tierColour(s.mainTier);
      ctx.fill();
      ctx.strokeStyle = "#ffffff";
      ctx.lineWidth = 1;
      ctx.stroke();
      const size = s.size * v.k;
      ctx.font = "700 12px system-ui, sans-serif";
      if (size < ctx.measureText(s.code).width + 6 || size < 16) continue;
      const x = s.cx * v.k + v.tx, y = s.cy * v.k + v.ty;
      const left = !this.ready ? "…" : soldOut ? "sold out" : `${s.available} left`;
      ctx.fillStyle = soldOut ? "#1a1a1a" : "#ffffff";
      ctx.font = "11px system-ui, sans-serif";
      const two = size > 30 && size > ctx.measureText(left).width + 6;
      ctx.font = "700 12px system-ui, sans-serif";
      ctx.fillText(s.code, x, two ? (size > 46 ? y - 12 : y - 7) : y);
      if (two) {
        ctx.font = "11px system-ui, sans-serif";
        ctx.fillText(left, x, size > 46 ? y + 2 : y + 7);
        const price = money(this.opts.price(s.mainTier));
        if (size > 46 && size > ctx.measureText(price).width + 6) ctx.fillText(price, x, y + 15);
      }
    }
  }

  drawSeats(ctx, w, h) {
    const v = this.view;
    const r = Math.min(this.gap * v.k * 0.42, 12);
    const [x0, y0] = this.toVenue(-r, -r), [x1, y1] = this.toVenue(w + r, h + r);
    // One path per look, filled once: a redraw is a handful of fills.
    const paths = new Map();
    const path = (key) => { let p = paths.get(key); if (!p) paths.set(key, (p = new Path2D())); return p; };
    const visible = [];
    for (const s of this.sections) {
      if (s.maxx < x0 || s.minx > x1 || s.maxy < y0 || s.miny > y1) continue;
      for (let i = s.start; i < s.end; i++) {
        const x = this.xs[i], y = this.ys[i];
        if (x < x0 || x > x1 || y < y0 || y > y1) continue;
        const sx = x * v.k + v.tx, sy = y * v.k + v.ty;
        visible.push(i);
        const state = this.states[i];
        const shape = this.flags[i] & ACCESSIBLE ? "square" : this.flags[i] & OBSTRUCTED ? "triangle" : "circle";
        if (this.mine.has(i)) addShape(path("mine"), shape, sx, sy, r);
        else if (state === AVAILABLE) addShape(path(`t${this.tier[i]}`), shape, sx, sy, r);
        else if (state === UNKNOWN) addShape(path("unknown"), shape, sx, sy, r * 0.8);
        else addShape(path("gone"), "circle", sx, sy, r * 0.45);
        if (this.selected.has(i)) addShape(path("ring"), "circle", sx, sy, r + 2.5);
      }
    }
    for (const [key, p] of paths) {
      if (key === "gone") { ctx.strokeStyle = "#8a8a8a"; ctx.lineWidth = Math.max(1, r * 0.25); ctx.stroke(p); continue; }
      if (key === "ring") { ctx.strokeStyle = "#111111"; ctx.lineWidth = Math.max(2, r * 0.35); ctx.stroke(p); continue; }
      ctx.fillStyle = key === "mine" ? "#111111" : key === "unknown" ? "#e3e3e3" : tierColour(Number(key.slice(1)));
      ctx.fill(p);
    }
    // Labels once there is room for them.
    if (r >= 8 && visible.length < 4000) {
      ctx.font = `${Math.min(11, r)}px system-ui, sans-serif`;
      ctx.fillStyle = "#ffffff";
      for (const i of visible) {
        if (this.states[i] !== AVAILABLE && !this.mine.has(i)) continue;
        ctx.fillText(this.labels[i], this.xs[i] * v.k + v.tx, this.ys[i] * v.k + v.ty + (this.flags[i] & OBSTRUCTED ? r * 0.2 : 0));
      }
    }
    if (r >= 4) {
      ctx.font = "600 11px system-ui, sans-serif";
      ctx.fillStyle = "#1a1a1a";
      for (const row of this.rows) {
        const i = row.start;
        const x = this.xs[i], y = this.ys[i];
        if (x < x0 || x > x1 || y < y0 || y > y1) continue;
        // The row label sits one seat before the row's first seat.
        const dx = row.end - row.start > 1 ? this.xs[i] - this.xs[i + 1] : -this.gap;
        const dy = row.end - row.start > 1 ? this.ys[i] - this.ys[i + 1] : 0;
        ctx.fillText(row.label, (x + dx * 1.3) * v.k + v.tx, (y + dy * 1.3) * v.k + v.ty);
      }
    }
    if (this.focus >= 0) {
      const sx = this.xs[this.focus] * v.k + v.tx, sy = this.ys[this.focus] * v.k + v.ty;
      ctx.strokeStyle = "#f59e0b";
      ctx.lineWidth = 3;
      ctx.beginPath();
      ctx.arc(sx, sy, r + 5, 0, Math.PI * 2);
      ctx.stroke();
    }
  }

  // ---- pointer -------------------------------------------------------------

  bindPointer() {
    const c = this.canvas;
    const pointers = new Map();
    let start = null, pinch = null;
    c.addEventListener("pointerdown", (e) => {
      c.setPointerCapture(e.pointerId);
      pointers.set(e.pointerId, { x: e.offsetX, y: e.offsetY });
      if (pointers.size === 1) start = { x: e.offsetX, y: e.offsetY, tx: this.view.tx, ty: this.view.ty, moved: false };
      if (pointers.size === 2) {
        const [a, b] = [...pointers.values()];
        pinch = { d: Math.hypot(a.x - b.x, a.y - b.y), k: this.view.k };
        start = null;
      }
    });
    c.addEventListener("pointermove", (e) => {
      if (!pointers.has(e.pointerId)) {
        if (e.pointerType === "mouse") this.hover(e.offsetX, e.offsetY);
        return;
      }
      pointers.set(e.pointerId, { x: e.offsetX, y: e.offsetY });
      if (pinch && pointers.size === 2) {
        const [a, b] = [...pointers.values()];
        const d = Math.hypot(a.x - b.x, a.y - b.y);
        this.zoomBy((pinch.k * d) / pinch.d / this.view.k, (a.x + b.x) / 2, (a.y + b.y) / 2);
      } else if (start) {
        const dx = e.offsetX - start.x, dy = e.offsetY - start.y;
        if (Math.hypot(dx, dy) > 6) start.moved = true;
        if (start.moved) { this.view.tx = start.tx + dx; this.view.ty = start.ty + dy; this.request(); }
      }
    });
    const end = (e) => {
      if (!pointers.has(e.pointerId)) return;
      pointers.delete(e.pointerId);
      if (start && !start.moved && e.type === "pointerup") this.tap(e.offsetX, e.offsetY);
      if (pointers.size < 2) pinch = null;
      start = null;
    };
    c.addEventListener("pointerup", end);
    c.addEventListener("pointercancel", end);
    c.addEventListener("wheel", (e) => {
      e.preventDefault();
      this.zoomBy(Math.exp(-e.deltaY * 0.0015), e.offsetX, e.offsetY);
    }, { passive: false });
  }

  seatAt(sx, sy) {
    const [x, y] = this.toVenue(sx, sy);
    const cx = Math.floor(x / this.cell), cy = Math.floor(y / this.cell);
    let best = -1, bestD = Math.max(this.gap * 0.7, 10 / this.view.k);
    for (let gx = cx - 1; gx <= cx + 1; gx++) {
      for (let gy = cy - 1; gy <= cy + 1; gy++) {
        for (const i of this.grid.get(this.cellKey(gx, gy)) || []) {
          const d = Math.hypot(this.xs[i] - x, this.ys[i] - y);
          if (d < bestD) { bestD = d; best = i; }
        }
      }
    }
    return best;
  }

  sectionAt(sx, sy) {
    const [x, y] = this.toVenue(sx, sy);
    return this.sections.find((s) => inside(s.hull, x, y))
      ?? this.sections.reduce((b, s) => (Math.hypot(s.cx - x, s.cy - y) < Math.hypot(b.cx - x, b.cy - y) ? s : b));
  }

  tap(sx, sy) {
    if (!this.seatMode()) { this.zoomToSection(this.sectionAt(sx, sy)); return; }
    const i = this.seatAt(sx, sy);
    if (i >= 0) { this.focus = i; this.toggle(i); }
  }

  hover(sx, sy) {
    if (!this.seatMode()) {
      const s = this.sectionAt(sx, sy);
      this.canvas.title = s ? this.sectionText(s) : "";
      return;
    }
    const i = this.seatAt(sx, sy);
    this.canvas.title = i >= 0 ? this.describe(i) : "";
  }

  // ---- keyboard ------------------------------------------------------------

  onKey(e) {
    const i = this.focus;
    const row = i >= 0 ? this.rows[this.rowOf[i]] : null;
    let handled = true;
    switch (e.key) {
      case "ArrowLeft": if (row && i > row.start) this.moveFocus(i - 1); break;
      case "ArrowRight": if (row && i < row.end - 1) this.moveFocus(i + 1); break;
      case "ArrowUp": this.moveRow(-1); break;
      case "ArrowDown": this.moveRow(1); break;
      case "PageUp": this.moveSection(-1); break;
      case "PageDown": this.moveSection(1); break;
      case "Enter": case " ": this.toggle(i); break;
      case "+": case "=": this.zoomBy(1.6); break;
      case "-": case "_": this.zoomBy(1 / 1.6); break;
      case "Home": this.fit(); break;
      default: handled = false;
    }
    if (handled) e.preventDefault();
  }

  moveFocus(i) {
    if (i < 0) return;
    this.focus = i;
    this.reveal(i);
    this.say(this.describe(i));
    this.request();
  }

  // The seat nearest this one in the next row of the same section.
  moveRow(step) {
    if (this.focus < 0) { this.moveFocus(0); return; }
    const row = this.rows[this.rowOf[this.focus]];
    const rows = this.sections[row.section].rows;
    const at = rows.indexOf(this.rowOf[this.focus]) + step;
    if (at < 0 || at >= rows.length) return;
    const target = this.rows[rows[at]];
    let best = target.start, bestD = Infinity;
    for (let j = target.start; j < target.end; j++) {
      const d = Math.hypot(this.xs[j] - this.xs[this.focus], this.ys[j] - this.ys[this.focus]);
      if (d < bestD) { bestD = d; best = j; }
    }
    this.moveFocus(best);
  }

  moveSection(step) {
    const current = this.focus < 0 ? -1 : this.rows[this.rowOf[this.focus]].section;
    const next = Math.min(Math.max(current + step, 0), this.sections.length - 1);
    const s = this.sections[next];
    this.zoomToSection(s);
    this.moveFocus(this.firstAvailable(next));
  }

  firstAvailable(sectionIndex) {
    const s = this.sections[sectionIndex];
    for (let i = s.start; i < s.end; i++) if (this.isAvailable(i)) return i;
    return s.start;
  }

  // ---- the list for screen readers -----------------------------------------

  sectionText(s) {
    const tiers = [...s.tiers.keys()].sort((a, b) => a - b);
    const from = Math.min(...tiers.map((t) => this.opts.price(t)));
    const left = this.ready ? `${s.available} of ${s.total} seats left` : `${s.total} seats`;
    return `${s.name}: ${left}, ${tiers.map((t) => this.opts.tierName(t)).join(" / ")}, from ${money(from)}`;
  }

  buildList() {
    const list = el("details", { class: "seat-list" }, el("summary", {}, "Sections and seats as a list"));
    for (const s of this.sections) {
      s.summary = el("summary", {}, this.sectionText(s));
      const d = el("details", {}, s.summary);
      d.addEventListener("toggle", () => {
        if (d.open && !s.boxes) this.fillSection(s, d);
        if (!d.open && s.boxes) { d.replaceChildren(s.summary); s.boxes = null; }
      });
      list.append(d);
    }
    return list;
  }

  fillSection(s, details) {
    s.boxes = new Map();
    for (const ri of s.rows) {
      const row = this.rows[ri];
      const fs = el("fieldset", {}, el("legend", {}, `Row ${row.label}`));
      for (let i = row.start; i < row.end; i++) {
        const box = el("input", { type: "checkbox", id: `seat-${this.ids[i]}`, "aria-label": this.describe(i) });
        box.addEventListener("change", () => { this.focus = i; this.toggle(i); this.syncList(); });
        s.boxes.set(i, box);
        fs.append(el("label", { class: "check", for: `seat-${this.ids[i]}` }, box, this.labels[i]));
      }
      details.append(fs);
    }
    this.syncList();
  }

  syncList() {
    for (const s of this.sections) {
      if (!s.boxes) continue;
      for (const [i, box] of s.boxes) {
        box.checked = this.selected.has(i);
        box.disabled = !this.isAvailable(i) && !this.selected.has(i);
        box.setAttribute("aria-label", this.describe(i));
      }
    }
  }
}

function addShape(p, shape, x, y, r) {
  if (shape === "square") { p.rect(x - r * 0.9, y - r * 0.9, r * 1.8, r * 1.8); return; }
  if (shape === "triangle") { p.moveTo(x, y - r * 1.05); p.lineTo(x + r, y + r * 0.8); p.lineTo(x - r, y + r * 0.8); p.closePath(); return; }
  p.moveTo(x + r, y);
  p.arc(x, y, r, 0, Math.PI * 2);
}

// Convex hull (monotone chain) of seats start..end: a section's outline.
function hull(xs, ys, start, end) {
  const pts = [];
  for (let i = start; i < end; i++) pts.push([xs[i], ys[i]]);
  pts.sort((a, b) => a[0] - b[0] || a[1] - b[1]);
  if (pts.length < 3) return pts;
  const cross = (o, a, b) => (a[0] - o[0]) * (b[1] - o[1]) - (a[1] - o[1]) * (b[0] - o[0]);
  const lower = [], upper = [];
  for (const p of pts) { while (lower.length >= 2 && cross(lower.at(-2), lower.at(-1), p) <= 0) lower.pop(); lower.push(p); }
  for (let i = pts.length - 1; i >= 0; i--) { const p = pts[i]; while (upper.length >= 2 && cross(upper.at(-2), upper.at(-1), p) <= 0) upper.pop(); upper.push(p); }
  return lower.slice(0, -1).concat(upper.slice(0, -1));
}

function area(poly) {
  let a = 0;
  for (let i = 0, j = poly.length - 1; i < poly.length; j = i++) a += (poly[j][0] + poly[i][0]) * (poly[j][1] - poly[i][1]);
  return a / 2;
}

function inside(poly, x, y) {
  let c = false;
  for (let i = 0, j = poly.length - 1; i < poly.length; j = i++) {
    const [xi, yi] = poly[i], [xj, yj] = poly[j];
    if ((yi > y) !== (yj > y) && x < ((xj - xi) * (y - yi)) / (yj - yi) + xi) c = !c;
  }
  return c;
}

/// A legend entry's swatch, drawn with the map's own shapes.
export function swatch(kind, tier) {
  const c = el("canvas", { width: 36, height: 36, "aria-hidden": "true" });
  const ctx = c.getContext("2d");
  const p = new Path2D();
  if (kind === "gone") {
    addShape(p, "circle", 18, 18, 6);
    ctx.strokeStyle = "#8a8a8a"; ctx.lineWidth = 3; ctx.stroke(p);
    return c;
  }
  addShape(p, kind === "accessible" ? "square" : kind === "obstructed" ? "triangle" : "circle", 18, 18, 11);
  ctx.fillStyle = kind === "mine" ? "#111111" : tierColour(tier || 2);
  ctx.fill(p);
  if (kind === "selected") {
    const ring = new Path2D(); addShape(ring, "circle", 18, 18, 15);
    ctx.strokeStyle = "#111111"; ctx.lineWidth = 4; ctx.stroke(ring);
  }
  return c;
}
