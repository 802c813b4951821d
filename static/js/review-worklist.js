// Worklist live updates: clinical staff's ws/studies/ socket follows the `worklist` group;
// any study event (new result, claim, review) refetches the server-rendered rows.
// Without WebSockets the rows are refetched every 15 s.
(function () {
  const box = document.getElementById("worklist");
  const live = document.getElementById("worklist-live");
  if (!box) return;
  let pending = null;

  function refresh() {
    if (pending) return;
    pending = setTimeout(() => {
      pending = null;
      fetch(box.dataset.rowsUrl, { credentials: "same-origin", headers: { Accept: "text/html" } })
        .then((r) => (r.ok ? r.text() : null))
        .then((html) => { if (html !== null) { box.innerHTML = html; box.dataset.refreshed = String(Date.now()); } });
    }, 300); // several events in a burst cause one refetch
  }

  function poll() {
    live.dataset.live = "polling";
    live.textContent = "Live updates: refreshing every 15 s.";
    setInterval(refresh, 15000);
  }

  if (!("WebSocket" in window)) { poll(); return; }
  const scheme = window.location.protocol === "https:" ? "wss" : "ws";
  const socket = new WebSocket(`${scheme}://${window.location.host}/ws/studies/`);
  socket.onopen = () => { live.dataset.live = "websocket"; live.textContent = "Live updates: on."; };
  socket.onmessage = () => refresh();
  socket.onclose = () => { if (live.dataset.live !== "polling") poll(); };
})();
