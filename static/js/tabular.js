// Tabular lab, experiment page: follow a running experiment by polling its status.json
// (which algorithm, grid point, folds done). Polls every second while the state moves, backs
// off (x1.5, up to 10 s) while it does not and after an error; reloads once it has finished so
// the server renders the result.
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
  let delay = FAST, last = JSON.stringify(initial), lastStatus = initial.status;

  const apply = (job) => {
    badge.dataset.status = job.status;
    badge.dataset.live = "polling";
    badge.className = "badge status-" + job.status;
    badge.textContent = job.status_display || job.status;
    text.textContent = job.text;
    bar.value = job.fraction;
    bar.textContent = `${Math.round(job.fraction * 100)} %`;
    percent.textContent = `${Math.round(job.fraction * 100)} %`;
    if (job.status !== lastStatus) live.textContent = `Experiment ${job.status_display || job.status}`;
    lastStatus = job.status;
  };

  const tick = () => {
    fetch(card.dataset.statusUrl, { credentials: "same-origin", headers: { Accept: "application/json" } })
      .then((r) => (r.ok ? r.json() : Promise.reject(new Error(`HTTP ${r.status}`))))
      .then((job) => {
        const now = JSON.stringify(job);
        delay = now === last ? Math.min(delay * 1.5, SLOW) : FAST;
        last = now;
        apply(job);
        if (job.finished) window.location.reload();
        else setTimeout(tick, delay);
      })
      .catch(() => { delay = Math.min(delay * 2, SLOW); setTimeout(tick, delay); });
  };
  setTimeout(tick, FAST);
})();
