// mellm-stream dashboard page: a full snapshot from /api/state, then live updates from /events (SSE).
// Every view carries `rev`; an item is replaced only by a newer one, so snapshot and live updates can
// arrive in either order. All text from events goes through textContent (never innerHTML).
"use strict";

const FIGURES = [
  ["fps_in", "fps in", 1],
  ["fps_processed", "fps processed", 1],
  ["frames_dropped", "frames dropped", 0],
  ["faces_lost", "faces lost", 0],
  ["queue_depth", "queue depth", 0],
  ["reconnects", "reconnects", 0],
  ["uptime_s", "uptime s", 0],
];
const SVG_NS = "http://www.w3.org/2000/svg";

const model = { streams: new Map(), candidates: new Map(), endpoints: new Map(), seenAt: new Map() };

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k === "class") node.className = v;
    else if (k === "text") node.textContent = v;
    else if (k === "style") node.style.cssText = v;  // CSSOM: allowed by the page's CSP, unlike style=""
    else node.setAttribute(k, v);
  }
  for (const c of children) if (c !== null && c !== undefined) node.append(c);
  return node;
}

function svg(tag, attrs) {
  const node = document.createElementNS(SVG_NS, tag);
  for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, v);
  return node;
}

function num(x, digits) {
  return typeof x === "number" && isFinite(x) ? x.toFixed(digits) : "–";
}

function clock(t) {
  if (typeof t !== "number") return "–";
  const d = new Date(t * 1000);
  return d.toLocaleTimeString([], { hour12: false }) + "." + String(d.getMilliseconds()).padStart(3, "0");
}

function point(p) {
  if (!p || typeof p.t !== "number") return "–";
  return `${p.t.toFixed(3)} s (frame ${p.frame})`;
}

// ---------------------------------------------------------------------------------------------------
// Streams

function streamSection(v) {
  let sec = document.querySelector(`section.stream[data-stream-id="${v.id}"]`);
  if (sec) return sec;
  document.getElementById("empty")?.remove();
  sec = el("section", { class: "stream", "data-stream-id": v.id, "data-stream": v.name });
  const head = el("div", { class: "stream-head" },
    el("h2", { text: v.name }),
    el("span", { class: "badge endpoint", text: v.endpoint }),
    el("span", { class: "badge session" }),
    el("span", { class: "badge liveness" }));
  const health = el("div", { class: "health" });
  for (const [key, label] of FIGURES) {
    health.append(el("div", { class: "fig", "data-fig": key }, el("span", { class: "v", text: "–" }), el("span", { class: "k", text: label })));
  }
  const charts = el("div", { class: "charts" },
    el("div", {}, chartSvg("fps", 520, 120),
      el("div", { class: "legend" }, "fps", el("i", { style: "background:var(--in)" }), "in",
        el("i", { style: "background:var(--proc)" }), "processed",
        el("i", { style: "background:var(--queue)" }), "queue depth (right)")),
    el("div", {}, chartSvg("timeline", 520, 60),
      el("div", { class: "legend" }, "timeline", el("i", { style: "background:var(--proc)" }), "explained",
        el("i", { style: "background:var(--drop)" }), "dropped", el("i", { style: "background:var(--pend)" }), "pending",
        el("i", { style: "background:var(--gap)" }), "seq gap", el("i", { style: "background:var(--in)" }), "engine restart")));
  sec.append(head, health, charts,
    el("div", { class: "counts" }),
    el("div", { class: "markers" }),
    el("div", { class: "error-line" }),
    el("h3", { text: "Candidates (newest first)" }),
    el("div", { class: "cands" }));
  insertSorted(document.getElementById("streams"), sec, (a) => a.dataset.streamId, v.id, false);
  return sec;
}

function chartSvg(kind, w, h) {
  return svg("svg", { class: `chart ${kind}`, width: w, height: h, viewBox: `0 0 ${w} ${h}`, "data-chart": kind });
}

function renderStream(v) {
  const sec = streamSection(v);
  sec.dataset.session = v.session;
  sec.querySelector(".session").textContent = `session ${v.session}`;
  const st = v.status || {};
  for (const [key, , digits] of FIGURES) {
    const fig = sec.querySelector(`.fig[data-fig="${key}"]`);
    fig.querySelector(".v").textContent = num(st[key], digits);
    fig.classList.toggle("warn", (key === "frames_dropped" || key === "faces_lost") && st[key] > 0);
  }
  const c = v.counts;
  const dropped = Object.entries(c.dropped).map(([r, n]) => `${r} ${n}`).join(", ");
  const counts = sec.querySelector(".counts");
  counts.replaceChildren(
    "candidates ", el("b", { class: "n-candidates", text: String(c.candidates) }),
    " · explained ", el("b", { class: "n-explanations", text: String(c.explanations) }),
    " · dropped ", el("b", { class: "n-dropped", text: String(Object.values(c.dropped).reduce((a, b) => a + b, 0)) }),
    dropped ? ` (${dropped})` : "",
    " · errors ", el("b", { class: "n-errors", text: String(c.errors) }));
  const markers = sec.querySelector(".markers");
  markers.replaceChildren(
    ...v.gaps.map((g) => el("div", { class: "gap", "data-gap": `${g.from}-${g.to}`,
      text: `⚠ gap at ${clock(g.time)}: missed ${g.missed} event${g.missed === 1 ? "" : "s"} (seq ${g.from}..${g.to})` })),
    ...v.restarts.map((r) => el("div", { class: "restart",
      text: `↻ engine restarted at ${clock(r.time)} (seq ${r.after} → ${r.seq}): session ${r.session}` })));
  sec.querySelector(".error-line").textContent = v.last_error
    ? `last error in ${v.last_error.where} at ${clock(v.last_error.time)}: ${v.last_error.message}` : "";
  drawFps(sec.querySelector("svg.fps"), v.history);
  drawTimeline(sec, v);
  updateLiveness();
}

function drawFps(node, history) {
  const W = +node.getAttribute("width"), H = +node.getAttribute("height"), P = 22;
  node.replaceChildren();
  const pts = history.filter((h) => !h.break);
  if (pts.length === 0) {
    node.append(Object.assign(svg("text", { x: 10, y: H / 2, fill: "#8a94a3", "font-size": 12 }), { textContent: "no status yet" }));
    return;
  }
  const t0 = history[0].time, t1 = Math.max(history[history.length - 1].time, t0 + 1);
  const fmax = Math.max(1, ...pts.map((h) => Math.max(h.fps_in || 0, h.fps_processed || 0))) * 1.1;
  const qmax = Math.max(1, ...pts.map((h) => h.queue_depth || 0));
  const x = (t) => P + ((t - t0) / (t1 - t0)) * (W - 2 * P);
  const y = (f, max) => H - 14 - (f / max) * (H - 24);
  node.append(svg("line", { x1: P, y1: H - 14, x2: W - P, y2: H - 14, stroke: "#dde1e6" }));
  const label = svg("text", { x: 2, y: 12, fill: "#66707c", "font-size": 10 });
  label.textContent = fmax.toFixed(0);
  node.append(label);
  const series = [["fps_in", "var(--in)", fmax], ["fps_processed", "var(--proc)", fmax], ["queue_depth", "var(--queue)", qmax]];
  for (const [key, colour, max] of series) {
    let seg = [];
    const flush = () => {
      if (seg.length) node.append(svg("polyline", { points: seg.join(" "), fill: "none", stroke: colour, "stroke-width": 2, "data-series": key }));
      seg = [];
    };
    for (const h of history) {
      if (h.break) { flush(); continue; }
      if (typeof h[key] === "number") seg.push(`${x(h.time).toFixed(1)},${y(h[key], max).toFixed(1)}`);
    }
    flush();
  }
  for (const h of history.filter((h) => h.break)) {
    node.append(svg("line", { x1: x(h.time), y1: 4, x2: x(h.time), y2: H - 14, stroke: "var(--in)", "stroke-dasharray": "4 3" }));
  }
}

function drawTimeline(sec, v) {
  const node = sec.querySelector("svg.timeline");
  const W = +node.getAttribute("width"), H = +node.getAttribute("height"), P = 10;
  node.replaceChildren();
  const cands = [...model.candidates.values()].filter((c) => c.stream_id === v.id);
  const times = [v.first_seen, v.last_event, ...cands.map((c) => c.received), ...v.gaps.map((g) => g.time)];
  const t0 = Math.min(...times), t1 = Math.max(...times, t0 + 1);
  const x = (t) => P + ((t - t0) / (t1 - t0)) * (W - 2 * P);
  node.append(svg("line", { x1: P, y1: H / 2, x2: W - P, y2: H / 2, stroke: "#dde1e6", "stroke-width": 2 }));
  for (const r of v.restarts) node.append(svg("line", { x1: x(r.time), y1: 4, x2: x(r.time), y2: H - 4, stroke: "var(--in)", "stroke-dasharray": "4 3" }));
  for (const c of cands) {
    const colour = c.outcome === "explanation" ? "var(--proc)" : c.outcome === "dropped" ? "var(--drop)" : "var(--pend)";
    const dot = svg("circle", { cx: x(c.received), cy: H / 2, r: 6, fill: colour, "data-candidate-id": c.candidate_id });
    const title = svg("title", {});
    title.textContent = `${c.candidate_id} ${c.outcome || "pending"}`;
    dot.append(title);
    dot.addEventListener("click", () => document.getElementById(`cand-${c.candidate_id}`)?.scrollIntoView({ behavior: "smooth" }));
    node.append(dot);
  }
  for (const g of v.gaps) {
    const gx = x(g.time);
    node.append(svg("polygon", { points: `${gx - 6},${H - 4} ${gx + 6},${H - 4} ${gx},${H - 16}`, fill: "var(--gap)", class: "gap-marker" }));
  }
  const a = svg("text", { x: P, y: 12, fill: "#66707c", "font-size": 10 });
  a.textContent = clock(t0);
  const b = svg("text", { x: W - P, y: 12, fill: "#66707c", "font-size": 10, "text-anchor": "end" });
  b.textContent = clock(t1);
  node.append(a, b);
}

function updateLiveness() {
  const now = performance.now();
  for (const v of model.streams.values()) {
    const sec = document.querySelector(`section.stream[data-stream-id="${v.id}"]`);
    if (!sec) continue;
    const silent = v.silent_s + (now - (model.seenAt.get(v.id) || now)) / 1000;
    const badge = sec.querySelector(".liveness");
    const live = silent < 10;
    badge.className = `badge liveness ${live ? "live" : "silent"}`;
    badge.textContent = live ? "live" : `silent ${silent.toFixed(0)} s`;
    sec.dataset.live = live ? "1" : "0";
  }
}

// ---------------------------------------------------------------------------------------------------
// Candidates

function insertSorted(parent, node, keyOf, key, newestFirst) {
  for (const child of parent.children) {
    const k = keyOf(child);
    if (k === undefined) continue;
    if (newestFirst ? key > k : key < k) { parent.insertBefore(node, child); return; }
  }
  parent.append(node);
}

function candidateBody(c) {
  const body = el("div", { class: "body" });
  const cd = c.candidate;
  if (cd) {
    body.append(
      el("div", { class: "title" }, `${cd.kind} · score ${num(cd.score, 3)} `, el("span", { class: "cid", text: c.candidate_id })),
      el("div", { class: "times" }, `onset ${point(cd.onset)} · apex ${point(cd.apex)} · offset ${point(cd.offset)}`),
      el("div", { class: "regions", text: `regions: ${(cd.regions || []).join(", ") || "–"}` }));
  } else {
    body.append(el("div", { class: "title" }, "candidate event not received ", el("span", { class: "cid", text: c.candidate_id })));
  }
  if (c.outcome === "explanation") {
    const e = c.explanation;
    const emo = e.emotion_detail && e.emotion_detail !== e.emotion ? `${e.emotion} / ${e.emotion_detail}` : e.emotion;
    const aus = el("ul", { class: "aus" });
    for (const a of e.aus || []) {
      aus.append(el("li", { "data-au": a.au, text: `AU${a.au} ${a.name} · ${a.side} · ${num(a.confidence, 2)}` }));
    }
    if (!(e.aus || []).length) aus.append(el("li", { text: "no action units" }));
    body.append(
      el("span", { class: "emotion", text: emo || "–" }),
      aus,
      el("p", { class: "text", text: e.text || "" }),
      el("div", { class: "meta", text: `explainer ${e.explainer} · latency ${num(e.latency_ms, 1)} ms from the offset frame` +
        (e.timing_ms ? ` (${num(e.timing_ms.since_decision, 1)} ms after the decision)` : "") }));
    if (c.clip_video_url) {
      const video = el("video", { controls: "", preload: "none", muted: "", playsinline: "", src: c.clip_video_url, class: "clip-video" });
      video.defaultPlaybackRate = 0.25;  // micro-expressions last a fraction of a second
      body.append(el("div", { class: "clip" }, video,
        el("span", { class: "meta", text: "plays at ¼ speed" }),
        el("a", { href: c.clip_url, download: `${c.candidate_id}.mp4`, text: "MP4" })));
    }
  } else if (c.outcome === "dropped") {
    const d = c.dropped;
    body.append(el("div", { class: "dropped" }, "dropped: ", el("span", { class: "reason", text: d.reason }),
      d.detail ? ` — ${d.detail}` : ""));
  } else {
    body.append(el("div", { class: "pending", text: "waiting for the explanation…" }));
  }
  return body;
}

function renderCandidate(c) {
  const stream = model.streams.get(c.stream_id);
  const sec = stream ? streamSection(stream) : null;
  if (!sec) return;
  let card = document.getElementById(`cand-${c.candidate_id}`);
  if (!card) {
    card = el("article", { class: "cand", id: `cand-${c.candidate_id}`, "data-candidate-id": c.candidate_id });
    card.append(c.map_url ? el("img", { class: "map", src: c.map_url, alt: `fused map of ${c.candidate_id}` })
      : el("div", { class: "nomap", text: "no map" }), el("div", { class: "body" }));
    insertSorted(sec.querySelector(".cands"), card, (n) => (n.dataset.received ? +n.dataset.received : undefined), c.received, true);
  } else if (c.map_url && !card.querySelector("img.map")) {
    card.querySelector(".nomap").replaceWith(el("img", { class: "map", src: c.map_url, alt: `fused map of ${c.candidate_id}` }));
  }
  card.dataset.received = c.received;
  card.dataset.outcome = c.outcome || "pending";
  card.dataset.session = c.session;
  const playing = card.querySelector("video") && !card.querySelector("video").paused;
  if (!playing) card.querySelector(".body").replaceWith(candidateBody(c));
  drawTimeline(sec, stream);
}

// ---------------------------------------------------------------------------------------------------
// Updates

function newer(map, key, v) {
  const old = map.get(key);
  return !old || (v.rev || 0) >= (old.rev || 0);
}

function apply(u) {
  if (u.kind === "stream") {
    const v = u.stream;
    if (!newer(model.streams, v.id, v)) return;
    model.streams.set(v.id, v);
    model.seenAt.set(v.id, performance.now());
    renderStream(v);
  } else if (u.kind === "candidate") {
    const c = u.candidate;
    if (!newer(model.candidates, c.candidate_id, c)) return;
    model.candidates.set(c.candidate_id, c);
    renderCandidate(c);
  } else if (u.kind === "evict") {
    model.candidates.delete(u.candidate_id);
    document.getElementById(`cand-${u.candidate_id}`)?.remove();
  } else if (u.kind === "endpoint") {
    model.endpoints.set(u.endpoint.endpoint, u.endpoint);
    renderEndpoints();
  } else if (u.kind === "resync") {
    refresh();
  }
}

function renderEndpoints() {
  const box = document.getElementById("endpoints");
  box.replaceChildren(...[...model.endpoints.values()].map((e) => el("span", { class: "ep", "data-endpoint": e.endpoint,
    text: `${e.endpoint}: ${e.messages} msgs · restarts ${e.restarts} · gaps ${e.gaps}${e.missed ? ` (${e.missed} missed)` : ""}${e.handshake_failures ? ` · CURVE handshake refused ×${e.handshake_failures}` : ""}` })));
}

async function refresh() {
  const res = await fetch("/api/state", { cache: "no-store" });
  const s = await res.json();
  const known = new Set(s.candidates.map((c) => c.candidate_id));
  for (const id of [...model.candidates.keys()]) if (!known.has(id)) apply({ kind: "evict", candidate_id: id });
  for (const e of s.endpoints) model.endpoints.set(e.endpoint, e);
  renderEndpoints();
  for (const v of s.streams) apply({ kind: "stream", stream: v });
  for (const c of s.candidates) apply({ kind: "candidate", candidate: c });
  document.body.dataset.ready = "1";
}

function connect() {
  const conn = document.getElementById("conn");
  const es = new EventSource("/events");
  es.onopen = () => { conn.dataset.state = "live"; conn.textContent = "live"; refresh().catch(console.error); };
  es.onerror = () => { conn.dataset.state = "lost"; conn.textContent = "reconnecting…"; };
  es.onmessage = (m) => { try { apply(JSON.parse(m.data)); } catch (err) { console.error(err); } };
}

setInterval(updateLiveness, 1000);
connect();
