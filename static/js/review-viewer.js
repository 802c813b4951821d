// Review page: full-resolution X-ray viewer (zoom/pan with CSS transforms, window/level with
// CSS brightness/contrast filters, heat-map overlay) and keyboard shortcuts for decisions.
(function () {
  const viewer = document.getElementById("viewer");
  const stage = document.getElementById("viewer-stage");
  const image = document.getElementById("viewer-image");
  const overlay = document.getElementById("viewer-overlay");
  const heatmapToggle = document.getElementById("viewer-heatmap");
  const brightness = document.getElementById("viewer-brightness");
  const contrast = document.getElementById("viewer-contrast");
  if (!viewer || !image) return;
  const view = { scale: 1, x: 0, y: 0 };

  function fit() {
    // Start with the whole image visible; zoom reaches the full resolution and beyond.
    const w = image.naturalWidth || 1, h = image.naturalHeight || 1;
    view.scale = Math.min(1, viewer.clientWidth / w, viewer.clientHeight / h);
    view.x = (viewer.clientWidth - w * view.scale) / 2;
    view.y = (viewer.clientHeight - h * view.scale) / 2;
    draw();
  }
  function draw() {
    stage.style.transform = `translate(${view.x}px, ${view.y}px) scale(${view.scale})`;
    image.style.filter = `brightness(${brightness.value / 100}) contrast(${contrast.value / 100})`;
    viewer.dataset.scale = view.scale.toFixed(3);
  }
  function zoom(factor, cx = viewer.clientWidth / 2, cy = viewer.clientHeight / 2) {
    const next = Math.min(8, Math.max(0.05, view.scale * factor));
    // Keep the point under the cursor where it is.
    view.x = cx - ((cx - view.x) * next) / view.scale;
    view.y = cy - ((cy - view.y) * next) / view.scale;
    view.scale = next;
    draw();
  }
  function toggleHeatmap(on) {
    if (!overlay) return;
    const show = on === undefined ? overlay.hidden : on;
    overlay.hidden = !show;
    if (heatmapToggle) heatmapToggle.checked = show;
  }

  // The heat-map starts hidden (it biases the read): also when the browser restores the checkbox.
  toggleHeatmap(false);
  image.complete ? fit() : image.addEventListener("load", fit);
  viewer.addEventListener("wheel", (e) => {
    e.preventDefault();
    const r = viewer.getBoundingClientRect();
    zoom(e.deltaY < 0 ? 1.15 : 1 / 1.15, e.clientX - r.left, e.clientY - r.top);
  }, { passive: false });
  let drag = null;
  viewer.addEventListener("pointerdown", (e) => { drag = { x: e.clientX - view.x, y: e.clientY - view.y }; viewer.setPointerCapture(e.pointerId); });
  viewer.addEventListener("pointermove", (e) => { if (drag) { view.x = e.clientX - drag.x; view.y = e.clientY - drag.y; draw(); } });
  viewer.addEventListener("pointerup", () => { drag = null; });
  [brightness, contrast].forEach((input) => input.addEventListener("input", draw));
  if (heatmapToggle) heatmapToggle.addEventListener("change", () => toggleHeatmap(heatmapToggle.checked));
  document.getElementById("viewer-tools").addEventListener("click", (e) => {
    const action = e.target.dataset && e.target.dataset.action;
    if (action === "zoom-in") zoom(1.25);
    if (action === "zoom-out") zoom(0.8);
    if (action === "reset") { brightness.value = 100; contrast.value = 100; fit(); }
  });

  // Decisions: C confirm, 1..n a class (the model's own class = confirm), X not assessable,
  // T fit for training, Ctrl+Enter save. Not while typing a note.
  const form = document.getElementById("review-form");
  const classes = JSON.parse((document.getElementById("review-class-list") || { textContent: "[]" }).textContent);
  const modelLabel = (document.getElementById("model-label") || {}).textContent;
  function decide(decision, label) {
    if (!form) return;
    form.querySelector(`input[name=decision][value=${decision}]`).checked = true;
    form.querySelector("#final-label").value = decision === "correct" ? label : "";
    form.dataset.decision = decision;
  }
  if (form) form.querySelector("#final-label").addEventListener("change", (e) => { if (e.target.value) decide("correct", e.target.value); });
  document.addEventListener("keydown", (e) => {
    const typing = ["TEXTAREA", "INPUT", "SELECT"].includes(e.target.tagName) && e.target.type !== "radio" && e.target.type !== "checkbox" && e.target.type !== "range";
    if (e.key === "Enter" && (e.ctrlKey || e.metaKey) && form) { e.preventDefault(); form.requestSubmit(); return; }
    if (typing || e.ctrlKey || e.metaKey || e.altKey) return;
    const key = e.key.toLowerCase();
    if (key === "+" || key === "=") zoom(1.25);
    else if (key === "-") zoom(0.8);
    else if (key === "r") fit();
    else if (key === "h") toggleHeatmap();
    else if (key === "c") decide("confirm");
    else if (key === "x") decide("not_assessable");
    else if (key === "t" && form) { const box = form.querySelector("#fit-for-training"); box.checked = !box.checked; }
    else if (/^[1-9]$/.test(key) && classes[Number(key) - 1]) {
      const label = classes[Number(key) - 1];
      label === modelLabel ? decide("confirm") : decide("correct", label);
    } else return;
    e.preventDefault();
  });
})();
