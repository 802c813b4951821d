// Model operations console: live training/augmentation progress (WebSocket, polling
// fallback) and the small SVG charts (loss/accuracy curves, ROC, calibration).
(function () {
  const COLORS = ["#1f6feb", "#d1242f", "#1a7f37", "#9a6700", "#8250df", "#0a7f8a"];
  const SVG = "http://www.w3.org/2000/svg";

  // series: [{name, points: [[x, y], ...]}]; draws axes from the data's range.
  function drawLines(svg, series, opts) {
    if (!svg) return;
    opts = opts || {};
    while (svg.firstChild) svg.removeChild(svg.firstChild);
    const box = svg.viewBox && svg.viewBox.baseVal;
    const W = (box && box.width) || 420, H = (box && box.height) || 200, L = 40, B = 24, T = 8, R = opts.legend || 110;
    const pts = series.flatMap((s) => s.points);
    if (!pts.length) return;
    const xs = pts.map((p) => p[0]), ys = pts.map((p) => p[1]);
    const x0 = opts.x0 ?? Math.min(...xs), x1 = opts.x1 ?? Math.max(...xs);
    const y0 = opts.y0 ?? Math.min(0, ...ys), y1 = opts.y1 ?? Math.max(...ys, 1e-6);
    const sx = (x) => L + ((x - x0) / (x1 - x0 || 1)) * (W - L - R);
    const sy = (y) => H - B - ((y - y0) / (y1 - y0 || 1)) * (H - B - T);
    const el = (name, attrs, text) => {
      const e = document.createElementNS(SVG, name);
      Object.entries(attrs).forEach(([k, v]) => e.setAttribute(k, v));
      if (text !== undefined) e.textContent = text;
      svg.appendChild(e);
      return e;
    };
    el("line", { x1: L, y1: H - B, x2: W - R, y2: H - B, stroke: "#888" });
    el("line", { x1: L, y1: T, x2: L, y2: H - B, stroke: "#888" });
    el("text", { x: 2, y: T + 10, "font-size": 10 }, y1.toFixed(2));
    el("text", { x: 2, y: H - B, "font-size": 10 }, y0.toFixed(2));
    el("text", { x: L, y: H - 6, "font-size": 10 }, `${opts.xlabel || ""} ${x0}…${x1}`);
    series.forEach((s, i) => {
      const color = COLORS[i % COLORS.length];
      el("polyline", { fill: "none", stroke: color, "stroke-width": 2, "data-series": s.name,
        points: s.points.map((p) => `${sx(p[0]).toFixed(1)},${sy(p[1]).toFixed(1)}`).join(" ") });
      // Markers too: a curve with a single point (e.g. one calibration bin) is still visible.
      if (s.points.length <= 20) s.points.forEach((p) => el("circle", { cx: sx(p[0]).toFixed(1), cy: sy(p[1]).toFixed(1), r: 3, fill: color }));
      el("text", { x: W - R + 6, y: T + 12 + i * 14, "font-size": 11, fill: color }, s.name);
    });
  }

  // Follow one job: WebSocket first, polling when it is unavailable or drops.
  function follow(kind, id, pollUrl, apply) {
    let polling = false;
    const poll = () => {
      if (polling || !pollUrl) return;
      polling = true;
      const tick = () => fetch(pollUrl, { credentials: "same-origin" }).then((r) => (r.ok ? r.json() : null))
        .then((job) => { if (job) apply(job, "polling"); if (!job || !job.finished) setTimeout(tick, 2000); })
        .catch(() => setTimeout(tick, 4000));
      tick();
    };
    if (!window.WebSocket) return poll();
    const scheme = location.protocol === "https:" ? "wss" : "ws";
    const ws = new WebSocket(`${scheme}://${location.host}/ws/modelops/${kind}/${id}/`);
    ws.onmessage = (e) => { const msg = JSON.parse(e.data); if (msg.job) apply(msg.job, "websocket"); };
    ws.onclose = (e) => { if (e.code !== 1000) poll(); };
    ws.onerror = poll;
  }

  function curves(history) {
    // Until the first epoch there is nothing to draw: a note instead of two empty charts.
    ["curve-loss", "curve-accuracy"].forEach((id) => { const svg = document.getElementById(id); if (svg) svg.toggleAttribute("hidden", !history.length); });  // an SVG element has no .hidden property
    const empty = document.getElementById("curves-empty");
    if (empty) empty.hidden = history.length > 0;
    const series = (key, name) => ({ name, points: history.filter((h) => h[key] !== undefined && h[key] !== null).map((h) => [h.epoch, h[key]]) });
    drawLines(document.getElementById("curve-loss"), [series("train_loss", "train loss"), series("val_loss", "val loss")].filter((s) => s.points.length), { xlabel: "epoch" });
    drawLines(document.getElementById("curve-accuracy"), [series("train_accuracy", "train acc"), series("val_accuracy", "val acc"), series("val_macro_f1", "val macro-F1")].filter((s) => s.points.length), { xlabel: "epoch", y0: 0, y1: 1 });
  }

  const runCard = document.getElementById("run");
  if (runCard) {
    const id = runCard.dataset.runId;
    const status = document.getElementById("run-status");
    const initial = JSON.parse(document.getElementById("run-data").textContent);
    let lastStatus = initial.status;
    const box = document.getElementById("run-progress");
    const bar = document.getElementById("run-progress-bar");
    const logs = document.getElementById("run-logs");
    const STATES = { queued: "Queued: waiting for a training worker…", waiting_first_epoch: "Waiting for the first epoch…",
      training: "Training", evaluating: "Evaluating and packaging the model…" };
    const clock = (s) => {
      if (s === null || s === undefined || s === "") return "—";
      s = Math.max(0, Math.round(Number(s)));
      const h = Math.floor(s / 3600), m = Math.floor((s % 3600) / 60), sec = s % 60;
      return h ? `${h} h ${String(m).padStart(2, "0")} min` : m ? `${m} min ${String(sec).padStart(2, "0")} s` : `${sec} s`;
    };
    // The server's figures at the last update, and when they arrived: the clock ticks in between.
    let timing = initial.timing || {}, timingAt = Date.now();
    const showTiming = () => {
      if (!box) return;
      const finished = !["queued", "waiting_first_epoch", "training", "evaluating"].includes(timing.state);
      const since = finished || timing.state === "queued" ? 0 : (Date.now() - timingAt) / 1000;
      document.getElementById("run-elapsed").textContent = timing.state === "queued" ? "—" : clock((timing.elapsed_s || 0) + since);
      const eta = timing.eta_s === null || timing.eta_s === undefined ? null : Math.max(0, timing.eta_s - since);
      document.getElementById("run-eta").textContent = finished ? "none" : eta === null ? "estimating…" : `about ${clock(eta)}`;
      box.dataset.state = timing.state;
    };
    const applyTiming = (t, status) => {
      if (!t || !box) return;
      timing = t; timingAt = Date.now();
      bar.value = t.fraction || 0;
      bar.textContent = `${Math.round((t.fraction || 0) * 100)} %`;
      document.getElementById("run-percent").textContent = `${Math.round((t.fraction || 0) * 100)} %`;
      document.getElementById("run-state").textContent = STATES[t.state] || status;
      showTiming();
    };
    showTiming();
    if (!initial.finished) setInterval(showTiming, 1000);
    const apply = (job, channel) => {
      status.dataset.live = channel;
      status.dataset.status = job.status;
      status.className = "badge status-" + job.status;
      status.textContent = job.status;
      const p = job.progress || {};
      // "step"/"epoch" are the loop's own phases; only the stages after training are worth naming.
      const stage = ["evaluating", "packaging"].includes(p.phase) ? p.phase : "";
      if (p.epoch !== undefined) document.getElementById("run-epoch").textContent = `epoch ${p.epoch}${p.epochs ? " / " + p.epochs : ""}${stage ? " · " + stage : ""}`;
      curves(p.history || []);
      applyTiming(job.timing, job.status);
      if (logs && typeof job.logs_tail === "string" && job.logs_tail) {
        // Stream the log's end; keep following it only if the reader is at the bottom.
        const atBottom = logs.scrollTop + logs.clientHeight >= logs.scrollHeight - 8;
        const full = logs.textContent, tail = job.logs_tail;
        if (!full.endsWith(tail)) {
          // The tail overlaps what is shown: keep the earlier part and put the new tail after it.
          const at = full.lastIndexOf(tail.slice(0, Math.min(200, tail.length)));
          logs.textContent = at >= 0 ? full.slice(0, at) + tail : tail;
        }
        if (atBottom) logs.scrollTop = logs.scrollHeight;
      }
      // A finished run has a result, an error or logs rendered by the server: show them.
      if (job.finished && job.status !== lastStatus) window.location.reload();
      lastStatus = job.status;
    };
    curves((initial.progress || {}).history || []);
    if (!initial.finished) follow("training", id, `/modelops/runs/${id}/status.json`, apply);
  }

  document.querySelectorAll("#augmentations li[data-job]").forEach((li) => {
    if (li.dataset.finished) return;
    follow("augmentation", li.dataset.job, null, (job) => {
      li.querySelector(".job-status").textContent = job.status;
      const p = job.progress || {};
      if (p.total) li.querySelector(".job-progress").textContent = `${p.done}/${p.total}`;
    });
  });

  // Compare: enabled only when A and B are two different versions.
  const compareForm = document.getElementById("compare-form");
  if (compareForm) {
    const button = document.getElementById("compare");
    const hint = document.getElementById("compare-hint");
    const update = () => {
      const a = compareForm.querySelector("input[name=a]:checked");
      const b = compareForm.querySelector("input[name=b]:checked");
      const ok = Boolean(a && b && a.value !== b.value);
      button.disabled = !ok;
      hint.textContent = ok ? "" : !a || !b ? "Choose a version as A and one as B." : "A and B are the same version: choose two different ones.";
    };
    compareForm.addEventListener("change", update);
    update();
  }

  const compare = document.getElementById("compare-data");
  if (compare) {
    const reports = JSON.parse(compare.textContent);
    const roc = [], cal = [];
    reports.forEach((r, i) => {
      const tag = i === 0 ? "A" : "B";
      Object.entries(r.roc || {}).forEach(([cls, c]) => roc.push({ name: c.auc == null ? `${tag} ${cls}` : `${tag} ${cls} (AUC ${c.auc.toFixed(3)})`, points: c.fpr.map((x, k) => [x, c.tpr[k]]) }));
      const c = r.calibration || {};
      if (c.confidence) cal.push({ name: `${tag} (ECE ${(c.ece ?? 0).toFixed(3)})`, points: c.confidence.map((x, k) => [x, c.accuracy[k]]) });
    });
    drawLines(document.getElementById("roc-chart"), roc, { x0: 0, x1: 1, y0: 0, y1: 1, xlabel: "FPR", legend: 230 });
    drawLines(document.getElementById("calibration-chart"), [{ name: "ideal", points: [[0, 0], [1, 1]] }, ...cal], { x0: 0, x1: 1, y0: 0, y1: 1, xlabel: "confidence" });
  }
})();
