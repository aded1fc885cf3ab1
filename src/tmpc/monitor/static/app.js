// tmpc monitor dashboard: polls /api/state every 2 seconds and draws it. No library, no
// network access but the monitor itself; every value is inserted as text, never as HTML.
"use strict";
(function () {
  const POLL_MS = 2000;
  const SVG_NS = "http://www.w3.org/2000/svg";
  const $ = (id) => document.getElementById(id);

  function el(tag, attrs, ...children) {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === null || v === undefined) continue;
      if (k === "class") e.className = v;
      else e.setAttribute(k, String(v));
    }
    for (const c of children) {
      if (c === null || c === undefined) continue;
      e.append(c instanceof Node ? c : document.createTextNode(String(c)));
    }
    return e;
  }

  function svg(tag, attrs, text) {
    const e = document.createElementNS(SVG_NS, tag);
    for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, String(v));
    if (text !== undefined) e.textContent = String(text);
    return e;
  }

  function when(t) {
    if (t === null || t === undefined) return "—";
    return new Date(t * 1000).toISOString().replace("T", " ").slice(0, 19) + "Z";
  }

  function hhmm(t) {
    return new Date(t * 1000).toISOString().slice(11, 16);
  }

  function ago(t, now) {
    if (t === null || t === undefined) return "never";
    const s = Math.max(0, Math.round(now - t));
    if (s < 90) return s + " s ago";
    if (s < 5400) return Math.round(s / 60) + " min ago";
    return Math.round(s / 3600) + " h ago";
  }

  function short(text, n) {
    if (!text) return "—";
    text = String(text);
    return text.length > n ? text.slice(0, n) + "…" : text;
  }

  function fill(tableId, emptyId, rows) {
    const body = $(tableId).querySelector("tbody");
    body.replaceChildren(...rows);
    if (emptyId) $(emptyId).hidden = rows.length > 0;
    $(tableId).hidden = rows.length === 0 && Boolean(emptyId);
  }

  function renderAlerts(state) {
    const items = state.alerts.map((a) => {
      // A resolved alert stays in the list, marked as such, with what ended it.
      const resolved = a.status === "resolved";
      return el("li", {
        class: "alert severity-" + a.severity + (resolved ? " resolved" : ""),
        "data-alert-id": a.id,
        "data-kind": a.kind,
        "data-status": a.status || "firing",
        title: "id " + a.id,
      },
        el("span", { class: "when" }, when(a.at)),
        el("span", { class: "kind" }, a.kind),
        resolved ? el("span", { class: "badge resolved" }, "resolved " + when(a.resolved_at))
          : null,
        el("span", { class: "parties" }, a.parties.length ? "(" + a.parties.join(", ") + ")" : ""),
        el("span", { class: "message" }, a.message),
        resolved ? el("span", { class: "resolution" }, a.resolution) : null);
    });
    $("alerts").replaceChildren(...items);
    $("alerts-empty").hidden = items.length > 0;
    $("alert-count").textContent = String(state.alert_count);
  }

  function renderNodes(state) {
    const rows = state.nodes.map((n) => {
      const up = n.up === true ? "up" : n.up === false ? "down" : "unknown";
      const epochs = Object.entries(n.epochs || {})
        .map(([w, e]) => short(w, 10) + ": " + e).join(", ");
      const chain = n.chain_ok
        ? el("span", { class: "badge ok" }, "ok")
        : el("span", { class: "badge broken", title: n.chain_problem }, "broken");
      return el("tr", { class: "node " + up, "data-node": n.name, title: n.error || n.url },
        el("td", { class: "name" }, n.name),
        el("td", { class: "state" }, el("span", { class: "badge " + up }, up)),
        el("td", { class: "last-seen" }, ago(n.last_seen, state.now)),
        el("td", { class: "audit-seq mono" },
          String(n.audit_seq) + (n.remote_seq !== null && n.remote_seq !== n.audit_seq
            ? " of " + n.remote_seq : "")),
        el("td", { class: "chain" }, chain,
          n.chain_problem ? el("div", { class: "problem" }, n.chain_problem) : null,
          n.audit_error ? el("div", { class: "problem" }, n.audit_error) : null),
        el("td", { class: "epochs mono" }, epochs || "—"));
    });
    fill("nodes", null, rows);
  }

  function renderWallets(state) {
    const rows = state.wallets.map((w) =>
      el("tr", { class: "wallet", "data-wallet": w.wallet_id },
        el("td", { class: "mono", title: w.wallet_id }, short(w.wallet_id, 16)),
        el("td", { class: "mono" }, short(w.key_id, 12) + " / " + (w.group || "—")),
        el("td", {}, w.scheme),
        el("td", { class: "t-of-n" }, w.threshold + "-of-" + w.n),
        el("td", { class: "epoch" }, w.epoch),
        el("td", { class: "mono", title: w.public_key }, short(w.public_key, 20)),
        el("td", { class: "addresses" },
          ...(w.addresses.length ? w.addresses.map((a) =>
            el("span", { class: "addr mono" }, el("span", { class: "kind" }, a.kind), a.address))
            : [w.record_error || "—"]))));
    fill("wallets", "wallets-empty", rows);
  }

  function renderSessions(state) {
    const rows = state.sessions.map((s) =>
      el("tr", { class: "session", "data-session": s.session },
        el("td", { class: "mono", title: s.session }, short(s.session, 16)),
        el("td", {}, s.protocol || "—"),
        el("td", { class: "round" }, s.round === null ? "—" : "round " + s.round),
        el("td", {}, s.coordinator || "—"),
        el("td", {}, (s.participants || []).join(", ") || "—"),
        el("td", { class: "mono", title: s.request || "" }, short(s.request, 16)),
        el("td", {}, ago(s.started, state.now))));
    fill("sessions", "sessions-empty", rows);
  }

  function renderSignatures(state) {
    const rows = state.signatures.map((s) =>
      el("tr", { class: "signature", "data-request": s.request },
        el("td", {}, when(s.at)),
        el("td", { class: "mono", title: s.wallet || "" }, short(s.wallet, 16)),
        el("td", { class: "mono", title: s.request }, short(s.request, 16)),
        el("td", {}, (s.participants || []).join(", ")),
        el("td", { class: "mono digest", title: s.signature_sha256 },
          short(s.signature_sha256, 24))));
    fill("signatures", "signatures-empty", rows);
    $("signature-count").textContent = String(state.signatures_total);
  }

  // A chart: x from the points' times, y from 0 to the largest value; bars or a line.
  function chart(target, points, kind, yUnit) {
    const W = 600, H = 180, L = 44, R = 10, T = 10, B = 24;
    const nodes = [];
    nodes.push(svg("line", { class: "axis", x1: L, y1: H - B, x2: W - R, y2: H - B }));
    nodes.push(svg("line", { class: "axis", x1: L, y1: T, x2: L, y2: H - B }));
    if (!points.length) {
      nodes.push(svg("text", { class: "none", x: W / 2, y: H / 2, "text-anchor": "middle" },
        "no data yet"));
      target.replaceChildren(...nodes);
      return;
    }
    const xs = points.map((p) => p.x), ys = points.map((p) => p.y);
    const x0 = Math.min(...xs), x1 = Math.max(...xs);
    const yMax = Math.max(...ys) || 1;
    const sx = (x) => x1 === x0 ? (L + W - R) / 2 : L + (x - x0) / (x1 - x0) * (W - R - L);
    const sy = (y) => H - B - y / yMax * (H - B - T);
    nodes.push(svg("text", { class: "label", x: L - 4, y: T + 8, "text-anchor": "end" },
      (Math.round(yMax * 100) / 100) + yUnit));
    nodes.push(svg("text", { class: "label", x: L - 4, y: H - B, "text-anchor": "end" }, "0"));
    nodes.push(svg("text", { class: "label", x: L, y: H - 6 }, hhmm(x0)));
    nodes.push(svg("text", { class: "label", x: W - R, y: H - 6, "text-anchor": "end" },
      hhmm(x1)));
    if (kind === "bars") {
      const w = Math.max(1, (W - R - L) / points.length - 1);
      for (const p of points) {
        if (!p.y) continue;
        const x = L + (p.x - x0) / Math.max(1, x1 - x0) * (W - R - L - w);
        nodes.push(svg("rect", { class: "bar", x: x, y: sy(p.y), width: w, height: H - B - sy(p.y) },
        ));
        nodes[nodes.length - 1].append(svg("title", {}, hhmm(p.x) + ": " + p.y));
      }
    } else {
      nodes.push(svg("polyline", {
        class: "line", points: points.map((p) => sx(p.x) + "," + sy(p.y)).join(" "),
      }));
      for (const p of points) {
        const dot = svg("circle", { class: "dot", cx: sx(p.x), cy: sy(p.y), r: 3 });
        dot.append(svg("title", {}, when(p.x) + ": " + p.y.toFixed(3) + " s"));
        nodes.push(dot);
      }
    }
    target.replaceChildren(...nodes);
  }

  function render(state) {
    $("cluster").textContent = state.cluster;
    $("updated").textContent = when(state.now);
    renderAlerts(state);
    renderNodes(state);
    renderWallets(state);
    renderSessions(state);
    renderSignatures(state);
    chart($("latency-chart"), state.latency.map((p) => ({ x: p.at, y: p.seconds })), "line", " s");
    chart($("volume-chart"), state.volume.map((p) => ({ x: p.minute, y: p.count })), "bars", "");
  }

  function setStatus(cls, text) {
    const s = $("status");
    s.className = "status " + cls;
    s.textContent = text;
  }

  async function tick() {
    try {
      const response = await fetch("/api/state", { cache: "no-store" });
      if (!response.ok) throw new Error("HTTP " + response.status);
      const state = await response.json();
      render(state);
      const down = state.nodes.filter((n) => n.up !== true).length;
      setStatus(down ? "bad" : "ok", down ? down + " node(s) not answering" : "all nodes up");
      document.body.dataset.loaded = "true";
    } catch (err) {
      setStatus("bad", "monitor unreachable (" + err.message + ")");
    } finally {
      setTimeout(tick, POLL_MS);
    }
  }

  tick();
})();
