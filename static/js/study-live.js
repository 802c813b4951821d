// Live study status: WebSocket first (reconnected with back-off); polling with If-None-Match and
// back-off (2 s doubling to 30 s) only while no WebSocket is open.
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

  // Polling fallback: If-None-Match with the last ETag (an unchanged status costs a 304 with no
  // body); the wait doubles from 2 s up to 30 s while nothing changes (and after errors), and
  // drops back to 2 s when the status moves. Meanwhile the WebSocket is retried now and then.
  const POLL_MIN = 2000, POLL_MAX = 30000;
  let polling = false, round = 0, etag = null, delay = POLL_MIN, socketTries = 0;
  function poll() {
    if (polling) return;
    polling = true;
    const mine = ++round;  // a newer polling round (after a WebSocket came and went) ends this one
    badge.dataset.live = "polling";
    const next = (changed) => {
      delay = changed ? POLL_MIN : Math.min(POLL_MAX, delay * 2);
      if (current.status !== "failed" && polling && mine === round) setTimeout(tick, delay);
    };
    const tick = () => {
      const headers = { Accept: "application/json" };
      if (etag) headers["If-None-Match"] = etag;
      fetch(`/studies/${studyId}/status.json`, { credentials: "same-origin", headers, cache: "no-store" })
        .then((r) => {
          if (r.status === 304) return next(false);
          if (!r.ok) return next(false);
          etag = r.headers.get("ETag");
          return r.json().then((p) => { const before = current.status; apply(p); next(p.status !== before); });
        })
        .catch(() => next(false));
    };
    tick();
    if ("WebSocket" in window && socketTries < 5) setTimeout(connect, Math.min(60000, 5000 * 2 ** socketTries));
  }

  function connect() {
    socketTries += 1;
    let socket;
    try {
      const scheme = window.location.protocol === "https:" ? "wss" : "ws";
      socket = new WebSocket(`${scheme}://${window.location.host}/ws/studies/${studyId}/`);
    } catch (e) {
      poll();
      return;
    }
    socket.onopen = () => { polling = false; socketTries = 0; badge.dataset.live = "websocket"; };
    socket.onmessage = (event) => apply(JSON.parse(event.data));
    socket.onclose = () => { if (current.status !== "failed") { polling = false; poll(); } };
  }

  if (current.status === "failed") return;
  if (!("WebSocket" in window)) { poll(); return; }
  connect();
})();
