/* The status page's script: refreshes the members table, the rate charts and the
 * partition ring in place from /cluster/status, /cluster/history and /cluster/ring, and
 * runs searches through /api/search (or /api/search/embedding for a pasted vector).
 *
 * No framework and nothing from elsewhere. Every refresh rewrites the same elements with
 * the same shapes, so nothing moves. The refresh period is REFRESH_MS, or ?refresh=<ms>
 * (250 to 60000) in the page's address. Figures from the network are shown with
 * textContent only, never parsed as HTML. */
"use strict";

(function () {
  const REFRESH_MS = 2000;
  const SVG = "http://www.w3.org/2000/svg";
  /* Okabe-Ito: told apart with the common colour blindnesses. */
  const PALETTE = ["#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00",
                   "#F0E442", "#000000"];
  const DASH = "\u2014";
  const $ = (id) => document.getElementById(id);

  function refreshPeriod() {
    const asked = Number(new URLSearchParams(location.search).get("refresh"));
    return asked >= 250 && asked <= 60000 ? asked : REFRESH_MS;
  }

  function el(tag, attrs, text) {
    const e = document.createElement(tag);
    for (const k in attrs || {}) e.setAttribute(k, attrs[k]);
    if (text !== undefined) e.textContent = text;
    return e;
  }

  function svg(tag, attrs) {
    const e = document.createElementNS(SVG, tag);
    for (const k in attrs || {}) e.setAttribute(k, attrs[k]);
    return e;
  }

  async function getJson(path, init) {
    const res = await fetch(path, Object.assign({cache: "no-store"}, init || {}));
    let doc = null;
    try { doc = await res.json(); } catch (e) { doc = null; }
    if (!doc) throw new Error(path + ": HTTP " + res.status);
    return {ok: res.ok, status: res.status, doc: doc};
  }

  /* ---- members: the same cells router/dashboard.c renders ---- */

  function num(v) { return Number.isInteger(v) ? String(v) : DASH; }

  function lastSeen(m) {
    if (m.self) return "self";
    if (!Number.isInteger(m.last_seen_ms)) return "never";
    return (m.last_seen_ms / 1000).toFixed(1) + " s ago";
  }

  function memberRow(m) {
    const tr = el("tr", {"data-id": m.id, "data-state": m.state});
    tr.append(el("th", {scope: "row"}, m.id), el("td", {}, m.role));
    const td = el("td");
    td.append(el("span", {class: "state state-" + m.state}, m.state));
    tr.append(td);
    const cells = [num(m.incarnation), lastSeen(m), num(m.partitions_primary),
                   num(m.partitions_replica), num(m.swarms), num(m.peers), num(m.shards),
                   Number.isInteger(m.replication_lag_max_ms) ? m.replication_lag_max_ms + " ms" : DASH];
    for (const c of cells) tr.append(el("td", {class: "num"}, c));
    if (m.suspected_by) tr.title = "suspected by " + m.suspected_by;
    return tr;
  }

  const lastStates = new Map();

  function noteChanges(members) {
    const list = $("changes");
    const time = new Date().toLocaleTimeString();
    for (const m of members) {
      const was = lastStates.get(m.id);
      if (was !== undefined && was !== m.state) {
        if (list.dataset.empty !== "no") { list.replaceChildren(); list.dataset.empty = "no"; }
        const li = el("li", {"data-id": m.id, "data-state": m.state},
                      time + "  " + m.id + ": " + was + " \u2192 " + m.state);
        list.prepend(li);
        while (list.children.length > 20) list.lastChild.remove();
      }
      lastStates.set(m.id, m.state);
    }
  }

  function renderStatus(doc) {
    const members = doc.members || [];
    $("members-body").replaceChildren(...members.map(memberRow));
    noteChanges(members);
    const nodes = members.filter((m) => m.role === "node");
    const alive = nodes.filter((m) => m.state === "alive").length;
    const routers = members.filter((m) => m.role === "router").length;
    if (doc.role === "standalone") {
      $("summary").textContent = "Standalone: router and node in one process (" + doc.self + ")";
      return;
    }
    $("summary").textContent = alive + " of " + nodes.length + " nodes alive \u00b7 " +
      routers + (routers === 1 ? " router" : " routers") + " \u00b7 " + doc.partitions +
      " partitions, replication " + doc.replication_factor + ", write quorum " +
      doc.write_quorum + " \u00b7 this page from " + doc.self + " (" + doc.role + ")";
  }

  /* ---- rate charts ---- */

  function chartPath(points, col, maxAge, peak) {
    /* x: 0 (oldest kept) .. 300 (now); y: 0 (peak) .. 60 (zero). */
    const xy = points.map((p) => [300 - (p[0] / maxAge) * 300, 60 - (p[col] / peak) * 56]);
    const line = xy.map((q, i) => (i ? "L" : "M") + q[0].toFixed(1) + " " + q[1].toFixed(1)).join("");
    return {line: line, area: line + "L" + xy[xy.length - 1][0].toFixed(1) + " 60L" +
                                xy[0][0].toFixed(1) + " 60Z"};
  }

  /* The x axis spans the history kept, at least a minute and at most the ring's capacity. */
  function renderHistory(doc) {
    const kept = (doc.capacity || 300) * (doc.interval_ms || 1000);
    const all = doc.points || [];
    const maxAge = Math.min(kept, Math.max(60000, all.length ? all[0][0] : 0));
    const points = all.filter((p) => p[0] <= maxAge);
    for (const fig of document.querySelectorAll(".chart")) {
      const col = (doc.series || []).indexOf(fig.dataset.series) + 1;
      if (col <= 0) continue;
      const now = points.length ? points[points.length - 1][col] : 0;
      const top = Math.max(0, ...points.map((p) => p[col]));
      const peak = Math.max(1, top);
      const minutes = Math.round(maxAge / 60000);
      const box = svg("svg", {viewBox: "0 0 300 60", preserveAspectRatio: "none", role: "img",
        "aria-label": fig.dataset.series + ": " + now.toFixed(1) + " per second now, peak " +
                      top.toFixed(1) + " over the last " + minutes + (minutes === 1 ? " minute" : " minutes")});
      fig.dataset.peak = String(top);
      box.append(svg("line", {class: "axis", x1: 0, y1: 59.5, x2: 300, y2: 59.5}));
      if (points.length >= 2) {
        const p = chartPath(points, col, maxAge, peak);
        box.append(svg("path", {class: "area", d: p.area}), svg("path", {class: "line", d: p.line}));
      }
      const old = fig.querySelector("svg");
      if (old) old.replaceWith(box); else fig.append(box);
      fig.querySelector(".now").textContent = now.toFixed(1) + "/s, peak " + top.toFixed(1);
    }
  }

  /* ---- the partition ring ---- */

  let ringVersion = null;
  const ringColours = new Map();

  function arcPath(cx, cy, r0, r1, a0, a1) {
    /* A whole turn (one partition, or one member holding a band) is two halves: an arc
     * whose ends meet draws nothing. */
    if (a1 - a0 >= 2 * Math.PI - 1e-9) {
      const mid = a0 + Math.PI;
      return arcPath(cx, cy, r0, r1, a0, mid) + arcPath(cx, cy, r0, r1, mid, a1);
    }
    const pt = (r, a) => (cx + r * Math.sin(a)).toFixed(2) + " " + (cy - r * Math.cos(a)).toFixed(2);
    const large = a1 - a0 > Math.PI ? 1 : 0;
    return "M" + pt(r1, a0) + "A" + r1 + " " + r1 + " 0 " + large + " 1 " + pt(r1, a1) +
           "L" + pt(r0, a1) + "A" + r0 + " " + r0 + " 0 " + large + " 0 " + pt(r0, a0) + "Z";
  }

  /* Draws the bands once per ring version: consecutive partitions of one member are one arc. */
  function drawRing(ring) {
    const box = $("ring");
    box.querySelectorAll("path, text").forEach((e) => e.remove());
    const P = ring.partitions, R = ring.replication;
    ring.nodes.forEach((id, i) => ringColours.set(id, PALETTE[i % PALETTE.length]));
    const width = 80 / Math.max(R, 1);
    for (let k = 0; k < R; k++) {
      const r1 = 115 - k * width, r0 = r1 - width + 2;
      let start = 0;
      for (let p = 1; p <= P; p++) {
        const owner = ring.replicas[start * R + k];
        if (p < P && ring.replicas[p * R + k] === owner) continue;
        if (owner >= 0) {
          const id = ring.nodes[owner];
          const a0 = (start / P) * 2 * Math.PI, a1 = (p / P) * 2 * Math.PI;
          const path = svg("path", {class: "arc", d: arcPath(120, 120, r0, r1, a0, a1),
                                    fill: ringColours.get(id), "data-node": id});
          const t = svg("title");
          t.textContent = (p - start > 1 ? "partitions " + start + "\u2013" + (p - 1)
                                         : "partition " + start) +
                          ": " + id + (k === 0 ? " (primary)" : " (replica " + (k + 1) + ")");
          path.append(t);
          box.append(path);
        }
        start = p;
      }
    }
    const label = svg("text", {class: "label", x: 120, y: 124});
    label.textContent = P + (P === 1 ? " partition" : " partitions");
    box.append(label);
    ringVersion = ring.version;
  }

  function renderRing(ring, status) {
    if (ring.version !== ringVersion) drawRing(ring);
    const byId = new Map((status.members || []).map((m) => [m.id, m]));
    for (const path of $("ring").querySelectorAll("path.arc")) {
      const m = byId.get(path.dataset.node);
      path.classList.toggle("down", !m || m.state !== "alive");
      path.classList.toggle("catching-up", !!m && m.state === "alive" && m.caught_up === false);
    }
    const legend = $("ring-legend");
    legend.replaceChildren(...ring.nodes.map((id) => {
      const m = byId.get(id) || {};
      const li = el("li", {"data-node": id, class: m.state === "alive" ? "" : "down"});
      const sw = el("span", {class: "swatch"});
      sw.style.background = ringColours.get(id);
      li.append(sw, el("strong", {}, id), document.createTextNode(
        " " + (m.state || "unknown") + " \u00b7 primary " + num(m.partitions_primary) +
        ", replica " + num(m.partitions_replica) + (m.caught_up === false ? " \u00b7 catching up" : "")));
      return li;
    }));
  }

  /* ---- refresh loop ---- */

  async function refresh() {
    try {
      const [status, history, ring] = await Promise.all(
        [getJson("/cluster/status"), getJson("/cluster/history"), getJson("/cluster/ring")]);
      if (status.ok) renderStatus(status.doc);
      if (history.ok) renderHistory(history.doc);
      if (ring.ok && status.ok) renderRing(ring.doc, status.doc);
      $("updated").textContent = "Updated " + new Date().toLocaleTimeString() +
        "; refreshes every " + (refreshPeriod() / 1000) + " s.";
      document.body.dataset.refreshed = String(Number(document.body.dataset.refreshed || 0) + 1);
    } catch (e) {
      $("updated").textContent = "Not answering (" + e.message + "); trying again.";
    }
    setTimeout(refresh, refreshPeriod());
  }

  /* ---- search ---- */

  function copyMagnet(input, button) {
    const done = () => { button.textContent = "Copied"; setTimeout(() => { button.textContent = "Copy"; }, 1500); };
    input.focus();
    input.select();
    if (navigator.clipboard && window.isSecureContext) {
      navigator.clipboard.writeText(input.value).then(done, () => { button.textContent = "Press Ctrl+C"; });
    } else {
      /* Plain http off localhost has no clipboard API: the link is selected to copy by hand. */
      let ok = false;
      try { ok = document.execCommand("copy"); } catch (e) { ok = false; }
      if (ok) done(); else button.textContent = "Press Ctrl+C";
    }
  }

  function plural(n, word) { return num(n) + " " + word + (n === 1 ? "" : "s"); }

  function hitItem(h, i) {
    const li = el("li", {"data-info-hash": h.info_hash});
    li.append(el("span", {class: "hit-name"}, h.display_name || h.info_hash));
    const sim = typeof h.similarity === "number" ? (h.similarity * 100).toFixed(1) + "%" : DASH;
    li.append(el("div", {class: "hit-figures"}, "similarity " + sim + " \u00b7 " +
      plural(h.seeders, "seeder") + " \u00b7 " + plural(h.leechers, "leecher") + " \u00b7 " +
      (h.model || "") + (h.dimension ? " (" + h.dimension + " dims)" : "")));
    const tags = el("div", {class: "hit-tags"});
    for (const t of h.tags || []) tags.append(el("span", {class: "tag"}, t));
    li.append(tags);
    const row = el("div", {class: "magnet-row"});
    const id = "magnet-" + i;
    const label = el("label", {for: id, class: "muted"}, "Magnet");
    const input = el("input", {id: id, class: "magnet", readonly: "", value: h.magnet_link || ""});
    const copy = el("button", {type: "button"}, "Copy");
    copy.addEventListener("click", () => copyMagnet(input, copy));
    const open = el("a", {href: h.magnet_link || "#"}, "Open");
    row.append(label, input, copy, open);
    li.append(row);
    return li;
  }

  async function search(ev) {
    ev.preventDefault();
    const text = $("q").value.trim();
    const out = $("search-status");
    if (!text) return;
    let path = "/api/search", body = {query: text, limit: 10};
    if (text.startsWith("[")) {
      let vec = null;
      try { vec = JSON.parse(text); } catch (e) { vec = null; }
      if (!Array.isArray(vec) || !vec.every((x) => typeof x === "number")) {
        out.textContent = "An embedding must be a JSON array of numbers.";
        $("results").replaceChildren();
        return;
      }
      path = "/api/search/embedding";
      body = {embedding: vec, limit: 10};
    }
    out.textContent = "Searching\u2026";
    try {
      const r = await getJson(path, {method: "POST", headers: {"Content-Type": "application/json"},
                                     body: JSON.stringify(body)});
      if (!r.ok || r.doc.status !== "success") {
        out.textContent = "Search refused: " + (r.doc.error || "HTTP " + r.status);
        $("results").replaceChildren();
        return;
      }
      const hits = r.doc.results || [];
      $("results").replaceChildren(...hits.map(hitItem));
      out.textContent = hits.length + (hits.length === 1 ? " hit" : " hits") +
        (r.doc.mode ? " (" + r.doc.mode + ")" : "") + (r.doc.partial ? "; partial: some partitions did not answer" : "");
    } catch (e) {
      out.textContent = "Search failed: " + e.message;
    }
  }

  function start() {
    $("search-form").addEventListener("submit", search);
    refresh();
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();
