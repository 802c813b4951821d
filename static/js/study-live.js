// Live study status: WebSocket first, polling every 3 s when WebSockets are unavailable.
(function () {
  const badge = document.getElementById("study-status");
  if (!badge) return;
  const studyId = badge.dataset.studyId;
  const failure = document.getElementById("study-failure");
  let current = JSON.parse(document.getElementById("study-status-data").textContent);
  const TERMINAL_FOR_PAGE = ["predicted", "explained", "reviewed", "failed"];

  function apply(payload) {
    const changed = payload.status !== current.status;
    current = payload;
    badge.textContent = payload.status_display;
    badge.className = "status status-" + payload.status;
    if (payload.failure_reason) { failure.textContent = payload.failure_reason; failure.hidden = false; }
    // A new result (prediction, explanation, review) is rendered by the server.
    if (changed && ["predicted", "explained", "reviewed"].includes(payload.status)) window.location.reload();
  }

  function poll() {
    fetch(`/studies/${studyId}/status.json`, { credentials: "same-origin" })
      .then((r) => (r.ok ? r.json() : null))
      .then((p) => { if (p) apply(p); if (!p || !TERMINAL_FOR_PAGE.includes(p.status)) setTimeout(poll, 3000); })
      .catch(() => setTimeout(poll, 5000));
  }

  if (TERMINAL_FOR_PAGE.includes(current.status) && current.status !== "predicted") return;
  try {
    const scheme = window.location.protocol === "https:" ? "wss" : "ws";
    const socket = new WebSocket(`${scheme}://${window.location.host}/ws/studies/${studyId}/`);
    let opened = false;
    socket.onopen = () => { opened = true; };
    socket.onmessage = (event) => apply(JSON.parse(event.data));
    socket.onclose = () => { if (!opened || !TERMINAL_FOR_PAGE.includes(current.status)) poll(); };
  } catch (e) {
    poll();
  }
})();
