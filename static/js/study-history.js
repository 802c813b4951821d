// "My studies": each row's status follows its study live (WebSocket on the user's own group,
// polling each unfinished row every 5 s without WebSockets). When a row gets a new result the
// page reloads, so the preliminary label column is rendered by the server.
(function () {
  const table = document.getElementById("study-history");
  if (!table) return;
  const RESULT = ["predicted", "explained", "reviewed", "failed"];
  const rows = new Map(Array.from(table.querySelectorAll("tr[data-study-id]")).map((tr) => [tr.dataset.studyId, tr]));
  const statusOf = (tr) => tr.querySelector(".status").dataset.status;

  function apply(payload) {
    const tr = payload && rows.get(payload.study_id);
    if (!tr || !payload.status) return;
    const badge = tr.querySelector(".status");
    const changed = badge.dataset.status !== payload.status;
    badge.dataset.status = payload.status;
    badge.className = "status status-" + payload.status;
    badge.textContent = payload.status_text || payload.status_display;  // the patient's wording
    if (changed && RESULT.includes(payload.status)) window.location.reload();
  }

  function poll() {
    table.dataset.live = "polling";
    const tick = () => {
      const pending = Array.from(rows.values()).filter((tr) => !["reviewed", "failed"].includes(statusOf(tr)));
      Promise.all(pending.map((tr) => fetch(`/studies/${tr.dataset.studyId}/status.json`, { credentials: "same-origin" })
        .then((r) => (r.ok ? r.json() : null)).then(apply).catch(() => null)))
        .finally(() => { if (pending.length) setTimeout(tick, 5000); });
    };
    tick();
  }

  if (!("WebSocket" in window)) { poll(); return; }
  try {
    const scheme = window.location.protocol === "https:" ? "wss" : "ws";
    const socket = new WebSocket(`${scheme}://${window.location.host}/ws/studies/`);
    socket.onopen = () => { table.dataset.live = "websocket"; };
    socket.onmessage = (event) => apply(JSON.parse(event.data));
    socket.onclose = () => poll();
  } catch (e) {
    poll();
  }
})();
