// Live study status: WebSocket first, polling every 3 s when WebSockets are unavailable.
// The page itself is rendered by the server: when a new result arrives (prediction,
// explanation, review, failure) it reloads; in between only the badge and steps change.
// A reviewed page keeps listening: a physician's correction (a new review version) reloads it.
(function () {
  const badge = document.getElementById("study-status");
  if (!badge) return;
  const studyId = badge.dataset.studyId;
  const stepOfStatus = JSON.parse(document.getElementById("study-steps-data").textContent);
  const steps = Array.from(document.querySelectorAll("#study-steps [data-step]"));
  let current = JSON.parse(document.getElementById("study-status-data").textContent);
  const RELOAD_ON = ["predicted", "explained", "reviewed", "failed"];
  const FINAL = ["reviewed", "failed"];

  // stepOfStatus: status -> [step, its state] (the server's selectors.STEP_OF_STATUS): the steps
  // before it are done, those after it still to do. The review step is done only once reviewed.
  function showSteps(status) {
    const [step, state] = stepOfStatus[status] || [];
    const at = steps.findIndex((li) => li.dataset.step === step);
    steps.forEach((li, i) => {
      li.className = "step step-" + (i < at ? "done" : i === at ? state : "todo");
      if (i === at && state === "current") li.setAttribute("aria-current", "step");
      else li.removeAttribute("aria-current");
    });
  }

  function apply(payload) {
    if (!payload || !payload.status) return;
    const changed = payload.status !== current.status || payload.review_version !== current.review_version;
    current = payload;
    badge.textContent = payload.status_text || payload.status_display;  // the patient's wording
    badge.className = "status status-" + payload.status;
    badge.dataset.status = payload.status;
    showSteps(payload.status);
    if (changed && RELOAD_ON.includes(payload.status)) window.location.reload();
  }

  let polling = false;
  function poll() {
    if (polling) return;
    polling = true;
    badge.dataset.live = "polling";
    const tick = () => fetch(`/studies/${studyId}/status.json`, { credentials: "same-origin", headers: { Accept: "application/json" } })
      .then((r) => (r.ok ? r.json() : null))
      .then((p) => { apply(p); if (!p || p.status !== "failed") setTimeout(tick, p && FINAL.includes(p.status) ? 30000 : 3000); })
      .catch(() => setTimeout(tick, 5000));
    tick();
  }

  if (current.status === "failed") return;
  if (!("WebSocket" in window)) { poll(); return; }
  try {
    const scheme = window.location.protocol === "https:" ? "wss" : "ws";
    const socket = new WebSocket(`${scheme}://${window.location.host}/ws/studies/${studyId}/`);
    socket.onopen = () => { badge.dataset.live = "websocket"; };
    socket.onmessage = (event) => apply(JSON.parse(event.data));
    socket.onerror = () => poll();
    socket.onclose = () => { if (current.status !== "failed") poll(); };
  } catch (e) {
    poll();
  }
})();
