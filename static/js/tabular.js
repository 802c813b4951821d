// Tabular lab, experiment page: follow a running experiment live (which algorithm, grid point,
// folds done) over the WebSocket the image runs use (ws/modelops/tabular/<id>/: the state on
// connect, then every progress event). When the socket is unavailable, refused or drops, poll
// status.json instead: every second while the state moves, backing off (x1.5, up to 10 s) while
// it does not and after an error. Reloads once the experiment has finished so the server renders
// the result.
(function () {
  const card = document.getElementById("experiment");
  const data = document.getElementById("experiment-data");
  if (!card || !data) return;
  const initial = JSON.parse(data.textContent);
  if (initial.finished) return;
  const badge = document.getElementById("experiment-status");
  const text = document.getElementById("experiment-progress-text");
  const bar = document.getElementById("experiment-progress-bar");
  const percent = document.getElementById("experiment-percent");
  const live = document.getElementById("experiment-live");
  const FAST = 1000, SLOW = 10000;
  let delay = FAST, last = JSON.stringify(initial), lastStatus = initial.status, done = false;

  const apply = (job, channel) => {
    if (done) return;
    badge.dataset.status = job.status;
    badge.dataset.live = channel;
    badge.className = "badge status-" + job.status;
    badge.textContent = job.status_display || job.status;
    text.textContent = job.text;
    bar.value = job.fraction;
    bar.textContent = `${Math.round(job.fraction * 100)} %`;
    percent.textContent = `${Math.round(job.fraction * 100)} %`;
    if (job.status !== lastStatus) live.textContent = `Experiment ${job.status_display || job.status}`;
    lastStatus = job.status;
    if (job.finished) { done = true; window.location.reload(); }
  };

  let polling = false;
  const tick = () => {
    if (done) return;
    fetch(card.dataset.statusUrl, { credentials: "same-origin", headers: { Accept: "application/json" } })
      .then((r) => (r.ok ? r.json() : Promise.reject(new Error(`HTTP ${r.status}`))))
      .then((job) => {
        const now = JSON.stringify(job);
        delay = now === last ? Math.min(delay * 1.5, SLOW) : FAST;
        last = now;
        apply(job, "polling");
        if (!job.finished) setTimeout(tick, delay);
      })
      .catch(() => { delay = Math.min(delay * 2, SLOW); setTimeout(tick, delay); });
  };
  const poll = () => {
    if (polling || done) return;
    polling = true;
    setTimeout(tick, FAST);
  };

  if (!window.WebSocket) return poll();
  const scheme = location.protocol === "https:" ? "wss" : "ws";
  let ws;
  try {
    ws = new WebSocket(`${scheme}://${location.host}/ws/modelops/tabular/${card.dataset.experimentId}/`);
  } catch (e) {
    return poll();
  }
  ws.onmessage = (e) => {
    const msg = JSON.parse(e.data);
    if (msg.job) { last = JSON.stringify(msg.job); apply(msg.job, "websocket"); }
  };
  ws.onclose = (e) => { if (e.code !== 1000) poll(); };
  ws.onerror = poll;
})();
