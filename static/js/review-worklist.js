// Worklist live updates: clinical staff's ws/studies/ socket follows the `worklist` group;
// any study event (new result, claim, review) refetches the server-rendered rows.
// Without WebSockets the rows are refetched every 15 s.
(function () {
  const box = document.getElementById("worklist");
  const live = document.getElementById("worklist-live");
  if (!box) return;
  let pending = null;

  // Which control had the focus, by its row's study and its role (data-focus), so that the
  // same control has it again after the rows are replaced (keyboard users keep their place).
  function focused() {
    const el = document.activeElement;
    if (!el || !box.contains(el)) return null;
    const row = el.closest("tr[data-study-id]");
    return { study: row ? row.dataset.studyId : null, role: el.dataset.focus || null, index: row ? [...row.parentNode.children].indexOf(row) : -1 };
  }
  function restore(where) {
    if (!where) return;
    let target = null;
    if (where.study) {
      const row = box.querySelector(`tr[data-study-id="${where.study}"]`);
      if (row) target = (where.role && row.querySelector(`[data-focus="${where.role}"]`)) || row.querySelector("[data-focus=open]");
      if (!target) { // the study left the list: the row now in its place
        const rows = box.querySelectorAll("tr[data-study-id]");
        const near = rows[Math.min(where.index, rows.length - 1)];
        if (near) target = near.querySelector("[data-focus=open]");
      }
    } else if (where.role) target = box.querySelector(`[data-focus="${where.role}"]`);
    (target || box).focus();
  }
  function swap(html) {
    const where = focused();
    box.innerHTML = html;
    restore(where);
    box.dataset.refreshed = String(Date.now());
  }

  function refresh() {
    if (pending) return;
    pending = setTimeout(() => {
      pending = null;
      fetch(box.dataset.rowsUrl, { credentials: "same-origin", headers: { Accept: "text/html" } })
        .then((r) => (r.ok ? r.text() : null))
        .then((html) => { if (html !== null) swap(html); });
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
