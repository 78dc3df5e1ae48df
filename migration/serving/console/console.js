// The migration console: fetch /v1/migration/status, redraw, repeat. No framework, no CDN.
"use strict";
(function () {
  const params = new URLSearchParams(location.search);
  const REFRESH_MS = Math.max(500, Number(params.get("refresh_ms")) || 3000);
  const CLASSES = [["same", "var(--same)"], ["explained", "var(--explained)"],
                   ["unexplained", "var(--unexplained)"], ["pending", "var(--pending)"]];
  const VERDICT_COLOUR = { PASS: "var(--pass)", FAIL: "var(--fail)", INCONCLUSIVE: "var(--inconclusive)" };
  const SVG = "http://www.w3.org/2000/svg";
  // This server's token (see action_guard.py): actions send it back, other sites cannot read it.
  const TOKEN = document.querySelector("meta[name=console-token]").content;
  const $ = (id) => document.getElementById(id);
  let last = null;
  let pendingAction = null;

  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, v);
    for (const c of children) node.append(c instanceof Node ? c : document.createTextNode(String(c)));
    return node;
  }
  function svg(tag, attrs, text) {
    const node = document.createElementNS(SVG, tag);
    for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, v);
    if (text !== undefined) node.textContent = text;
    return node;
  }
  function fmtTime(iso) { return iso ? iso.replace("T", " ").replace(/\.\d+Z$|Z$/, " UTC") : "–"; }
  function fmtLag(s) {
    if (s === null || s === undefined) return "no data";
    if (s < 120) return s.toFixed(0) + " s";
    if (s < 7200) return (s / 60).toFixed(1) + " min";
    if (s < 172800) return (s / 3600).toFixed(1) + " h";
    return (s / 86400).toFixed(1) + " days";
  }
  function fillBody(table, rows) {
    const body = $(table).tBodies[0];
    body.replaceChildren(...rows);
  }

  function drawState(doc) {
    const c = doc.cutover;
    const stage = $("stage");
    stage.textContent = c.label;
    stage.className = "stage " + c.stage;
    stage.dataset.stage = c.stage;
    $("canary").textContent = c.stage === "CANARY" ? c.canary_percent + " %" : "–";
    $("since").textContent = c.since ? fmtTime(c.since) : "never moved";
    $("gate").textContent = (c.gate.ok ? "Gate open: " : "Gate: ") + c.gate.message;
    $("gate").className = "gate " + (c.gate.ok ? "ok" : "");
    $("terraform").textContent = "Terraform: " + c.terraform;
    const sh = doc.shadow;
    const shadow = $("shadow");
    if (sh && sh.current) {
      shadow.textContent = (100 * sh.mismatch_rate).toFixed(2) + " %";
      shadow.title = sh.keys_mismatched + " of " + sh.keys_compared + " keys, " + sh.reads + " reads";
      shadow.className = "big " + (sh.mismatch_rate > sh.max_mismatch_rate ? "bad" : "ok");
    } else {
      shadow.textContent = "no reads yet";
      shadow.className = "big muted";
    }
    $("actions").hidden = !doc.actions_allowed;
    $("actions-off").hidden = doc.actions_allowed;
    $("advance-btn").disabled = !c.can_advance;
    $("rollback-btn").disabled = !c.can_rollback;
  }

  function drawTimeline(history) {
    const items = history.slice().reverse().map((t) => {
      const from = t.from_stage + (t.from_percent ? "(" + t.from_percent + "%)" : "");
      const to = t.to_stage + (t.to_percent ? "(" + t.to_percent + "%)" : "");
      const li = el("li", { class: t.action, "data-seq": t.seq },
        el("div", {}, el("span", { class: "move" }, from + " → " + to),
           " ", el("span", { class: "muted" }, "#" + t.seq + " " + fmtTime(t.at))),
        el("div", {}, t.actor + (t.automatic ? " [automatic]" : "") + ": " + t.reason));
      if (t.evidence && t.evidence.length) {
        const ev = el("div", { class: "muted" }, "evidence: ");
        t.evidence.forEach((id, i) => {
          if (i) ev.append(", ");
          ev.append(el("a", { href: "/v1/migration/reports/" + encodeURIComponent(id) + "/report.html" }, id));
        });
        li.append(ev);
      }
      return li;
    });
    if (!items.length) items.push(el("li", { class: "empty" }, "no transition yet: the migration is in SHADOW"));
    $("timeline").replaceChildren(...items);
  }

  function drawChart(validation) {
    const runs = validation.runs.filter((r) => r.counts_for_gate);
    const shown = runs.length ? runs : validation.runs;
    $("runs-caption").textContent = runs.length
      ? "(" + validation.gate_arms.join(" vs ") + ", last " + shown.length + " of " + validation.total_runs + ")"
      : "(no run of " + validation.gate_arms.join(" vs ") + " yet)";
    const W = 900, H = 240, top = 16, bottom = 40, left = 56, right = 10;
    const root = svg("svg", { viewBox: "0 0 " + W + " " + H, role: "img", "aria-label": "validation runs" });
    const max = Math.max(1, ...shown.map((r) => r.keys_total));
    const plotH = H - top - bottom;
    const slot = (W - left - right) / Math.max(shown.length, 1);
    const barW = Math.max(4, Math.min(48, slot * 0.7));
    root.append(svg("line", { x1: left, x2: W - right, y1: top + plotH, y2: top + plotH, stroke: "#90a4ae" }));
    root.append(svg("text", { x: left - 6, y: top + 4, "text-anchor": "end", "font-size": 11 }, String(max)));
    root.append(svg("text", { x: left - 6, y: top + plotH, "text-anchor": "end", "font-size": 11 }, "0"));
    root.append(svg("text", { x: 4, y: top + plotH / 2, "font-size": 11, fill: "#607d8b" }, "keys"));
    shown.forEach((run, i) => {
      const x = left + i * slot + (slot - barW) / 2;
      const g = svg("g", { class: "run", "data-run-id": run.run_id, "data-verdict": run.verdict });
      let y = top + plotH;
      for (const [name, colour] of CLASSES) {
        const n = run.keys[name] || 0;
        if (!n) continue;
        const h = Math.max(2, (n / max) * plotH);
        y -= h;
        g.append(svg("rect", { x, y, width: barW, height: h, fill: colour, class: "seg " + name, "data-keys": n }));
      }
      g.append(svg("rect", { x, y: top + plotH + 4, width: barW, height: 8, fill: VERDICT_COLOUR[run.verdict] || "#999",
                             class: "verdict" }));
      g.append(svg("text", { x: x + barW / 2, y: top + plotH + 26, "text-anchor": "middle", "font-size": 10,
                             fill: VERDICT_COLOUR[run.verdict] || "#999" }, run.verdict[0]));
      g.append(svg("title", {}, run.run_id + "  " + run.verdict + "  " + fmtTime(run.finished_at) + "\n" +
        CLASSES.map(([n]) => n + ": " + (run.keys[n] || 0)).join(", ")));
      if (run.report_html) {
        const a = svg("a", { href: run.report_html });
        a.append(g);
        root.append(a);
      } else root.append(g);
    });
    if (!shown.length) {
      root.append(svg("text", { x: W / 2, y: H / 2, "text-anchor": "middle", fill: "#78909c" },
                      "no validation run recorded yet: run `kappactl validate`"));
    }
    $("chart").replaceChildren(root);
    $("legend").replaceChildren(
      ...CLASSES.map(([n, c]) => el("span", {}, swatch(c), n + " keys")),
      ...Object.entries(VERDICT_COLOUR).map(([v, c]) => el("span", {}, swatch(c), v)));
  }
  function swatch(colour) { const i = el("i"); i.style.background = colour; return i; }

  function drawReport(report) {
    const head = $("report-head");
    if (!report) {
      head.replaceChildren("no report yet");
      fillBody("unexplained", []);
      return;
    }
    head.replaceChildren(
      report.report_html ? el("a", { href: report.report_html, id: "report-link" }, "run " + report.run_id)
        : el("span", { id: "report-link" }, "run " + report.run_id),
      " " + report.verdict + " at " + fmtTime(report.finished_at) + ", " + report.unexplained + " unexplained keys");
    fillBody("unexplained", report.top_unexplained.map((u) => el("tr", {},
      el("td", {}, fmtTime(u.window_start)), el("td", {}, u.tweet_id), el("td", {}, u.event_type),
      el("td", { class: "num" }, u.left_count ?? "–"), el("td", { class: "num" }, u.right_count ?? "–"))));
    if (!report.top_unexplained.length) {
      fillBody("unexplained", [el("tr", {}, el("td", { colspan: 5, class: "muted" }, "no unexplained key in this run"))]);
    }
  }

  function drawArms(arms) {
    fillBody("arms", arms.map((a) => el("tr", { "data-arm": a.arm },
      el("td", {}, a.arm), el("td", {}, fmtTime(a.newest_window_end)),
      el("td", { class: "num lag" }, fmtLag(a.lag_seconds)), el("td", { class: "num rows" }, a.rows.toLocaleString("en")))));
  }

  function drawDeadLetters(dl) {
    $("dl-total").textContent = "(" + dl.total + ")";
    const rows = dl.by_reason.map((d) => el("tr", {}, el("td", {}, d.pipeline), el("td", {}, d.reason),
                                            el("td", { class: "num" }, d.count)));
    if (!rows.length) rows.push(el("tr", {}, el("td", { colspan: 3, class: "muted" }, "none")));
    fillBody("dead-letters", rows);
  }

  function draw(doc) {
    last = doc;
    drawState(doc);
    drawTimeline(doc.history);
    drawChart(doc.validation);
    drawReport(doc.latest_report);
    drawArms(doc.arms);
    drawDeadLetters(doc.dead_letters);
    $("updated").textContent = "status at " + fmtTime(doc.generated_at) + (doc.read_error ? " (read error: " + doc.read_error + ")" : "");
    document.body.dataset.generatedAt = doc.generated_at;
    document.body.dataset.renders = String(Number(document.body.dataset.renders || 0) + 1);
  }

  async function refresh() {
    try {
      const response = await fetch("/v1/migration/status", { cache: "no-store" });
      const doc = await response.json();
      if (!response.ok) throw new Error(doc.error || response.status);
      draw(doc);
    } catch (err) {
      $("updated").textContent = "status unavailable: " + err.message + " (retrying)";
    }
  }

  function ask(action) {
    if (!last) return;
    pendingAction = action;
    const c = last.cutover;
    $("confirm-title").textContent = action === "advance" ? "Advance the cutover" : "Roll back to SHADOW";
    $("confirm-text").textContent = action === "advance"
      ? "Move reads forward from " + c.label + ". The gate still applies: " + c.gate.message
      : "Route every read back to legacy (from " + c.label + ").";
    $("percent-row").hidden = !(action === "advance" && (c.stage === "SHADOW" || c.stage === "CANARY"));
    $("confirm-reason").value = "";
    $("confirm").returnValue = "";
    $("confirm").showModal();
  }

  async function act(action) {
    const body = { reason: $("confirm-reason").value.trim(), confirm: true };
    const percent = $("confirm-percent").value;
    if (action === "advance" && percent && !$("percent-row").hidden) {
      body.percent = Number(percent);
      if (last.cutover.stage === "CANARY") body.to = "CANARY";
    }
    const result = $("action-result");
    result.textContent = action + "…";
    const response = await fetch("/v1/migration/" + action, {
      method: "POST", headers: { "Content-Type": "application/json", "X-Console-Token": TOKEN },
      body: JSON.stringify(body) });
    const doc = await response.json();
    result.textContent = response.ok ? "done: " + doc.state.last_transition.from_stage + " → " + doc.state.stage
                                     : "refused (" + response.status + "): " + doc.error;
    result.className = response.ok ? "ok" : "bad";
    result.dataset.status = String(response.status);
    await refresh();
  }

  $("advance-btn").addEventListener("click", () => ask("advance"));
  $("rollback-btn").addEventListener("click", () => ask("rollback"));
  $("confirm").addEventListener("close", () => {
    const action = pendingAction;
    pendingAction = null;
    if ($("confirm").returnValue === "ok" && action && $("confirm-reason").value.trim()) act(action);
  });
  refresh();
  setInterval(refresh, REFRESH_MS);
})();
