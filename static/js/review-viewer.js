// Review page: X-ray viewer (fit to the viewer, zoom/pan with CSS transforms, pinch-zoom and
// drag on touch screens, arrow keys pan), window presets and brightness/contrast as CSS
// filters, heat-map overlay (off by default) with its opacity, and keyboard decisions.
(function () {
  const viewer = document.getElementById("viewer");
  const stage = document.getElementById("viewer-stage");
  const image = document.getElementById("viewer-image");
  const overlay = document.getElementById("viewer-overlay");
  const heatmapToggle = document.getElementById("viewer-heatmap");
  const opacity = document.getElementById("viewer-heatmap-opacity");
  const brightness = document.getElementById("viewer-brightness");
  const contrast = document.getElementById("viewer-contrast");
  if (!viewer || !image) return;
  const view = { scale: 1, x: 0, y: 0 };
  // Window presets: [brightness %, contrast %] of the CSS filters (a PNG has no Hounsfield
  // units; these approximate the usual windows on the stored 8-bit image).
  const PRESETS = { default: [100, 100], lung: [125, 170], bone: [80, 220], soft: [110, 135] };

  function fit() {
    // The whole image, as large as the viewer allows (up or down), centred.
    const w = image.naturalWidth || 1, h = image.naturalHeight || 1;
    view.scale = Math.min(viewer.clientWidth / w, viewer.clientHeight / h);
    view.x = (viewer.clientWidth - w * view.scale) / 2;
    view.y = (viewer.clientHeight - h * view.scale) / 2;
    viewer.dataset.fitted = "1";
    draw();
  }
  function draw() {
    stage.style.transform = `translate(${view.x}px, ${view.y}px) scale(${view.scale})`;
    image.style.filter = `brightness(${brightness.value / 100}) contrast(${contrast.value / 100})`;
    if (overlay && opacity) overlay.style.opacity = String(opacity.value / 100);
    viewer.dataset.scale = view.scale.toFixed(3);
  }
  function zoom(factor, cx = viewer.clientWidth / 2, cy = viewer.clientHeight / 2) {
    const next = Math.min(16, Math.max(0.05, view.scale * factor));
    // Keep the point under the cursor (or between the fingers) where it is.
    view.x = cx - ((cx - view.x) * next) / view.scale;
    view.y = cy - ((cy - view.y) * next) / view.scale;
    view.scale = next;
    viewer.dataset.fitted = "";
    draw();
  }
  function pan(dx, dy) { view.x += dx; view.y += dy; viewer.dataset.fitted = ""; draw(); }
  function preset(name) {
    const values = PRESETS[name] || PRESETS.default;
    brightness.value = values[0];
    contrast.value = values[1];
    markPreset(name);
    draw();
  }
  function markPreset(name) {
    document.querySelectorAll("#viewer-tools .preset").forEach((b) => b.setAttribute("aria-pressed", String(b.dataset.preset === name)));
    viewer.dataset.preset = name || "";
  }
  function toggleHeatmap(on) {
    if (!overlay) return;
    const show = on === undefined ? overlay.hidden : on;
    overlay.hidden = !show;
    if (heatmapToggle) heatmapToggle.checked = show;
  }

  // The heat-map starts hidden (it biases the read): also when the browser restores the checkbox.
  toggleHeatmap(false);
  image.complete && image.naturalWidth ? fit() : image.addEventListener("load", fit);
  // A resized window (or a phone turned) refits an image the physician has not zoomed.
  window.addEventListener("resize", () => { if (viewer.dataset.fitted) fit(); });
  viewer.addEventListener("wheel", (e) => {
    e.preventDefault();
    const r = viewer.getBoundingClientRect();
    zoom(e.deltaY < 0 ? 1.15 : 1 / 1.15, e.clientX - r.left, e.clientY - r.top);
  }, { passive: false });

  // Pointer events cover mouse, pen and touch: one pointer drags, two pinch (zoom about their middle).
  const pointers = new Map();
  let last = null;
  const gesture = () => {
    const p = [...pointers.values()];
    const r = viewer.getBoundingClientRect();
    if (p.length === 1) return { x: p[0].x - r.left, y: p[0].y - r.top, d: 0 };
    return { x: (p[0].x + p[1].x) / 2 - r.left, y: (p[0].y + p[1].y) / 2 - r.top, d: Math.hypot(p[0].x - p[1].x, p[0].y - p[1].y) };
  };
  viewer.addEventListener("pointerdown", (e) => {
    pointers.set(e.pointerId, { x: e.clientX, y: e.clientY });
    viewer.setPointerCapture(e.pointerId);
    last = gesture();
  });
  viewer.addEventListener("pointermove", (e) => {
    if (!pointers.has(e.pointerId)) return;
    pointers.set(e.pointerId, { x: e.clientX, y: e.clientY });
    const now = gesture();
    if (last && pointers.size <= 2) {
      pan(now.x - last.x, now.y - last.y);
      if (pointers.size === 2 && last.d > 0 && now.d > 0) zoom(now.d / last.d, now.x, now.y);
    }
    last = now;
  });
  const lift = (e) => { pointers.delete(e.pointerId); last = pointers.size ? gesture() : null; };
  viewer.addEventListener("pointerup", lift);
  viewer.addEventListener("pointercancel", lift);

  [brightness, contrast].forEach((input) => input.addEventListener("input", () => { markPreset(""); draw(); }));
  if (opacity) opacity.addEventListener("input", () => { toggleHeatmap(true); draw(); });
  if (heatmapToggle) heatmapToggle.addEventListener("change", () => toggleHeatmap(heatmapToggle.checked));
  document.getElementById("viewer-tools").addEventListener("click", (e) => {
    const button = e.target.closest("button");
    if (!button) return;
    const action = button.dataset.action;
    if (action === "zoom-in") zoom(1.25);
    if (action === "zoom-out") zoom(0.8);
    if (action === "reset") { preset("default"); fit(); }
    if (button.dataset.preset) preset(button.dataset.preset);
  });
  draw();

  // Decisions: C confirm, 1..n a class (the model's own class = confirm), X not assessable,
  // T fit for training, Ctrl+Enter save, Ctrl+Shift+Enter save & next. Not while typing a note.
  const form = document.getElementById("review-form");
  const saveNext = document.getElementById("save-next");
  const classes = JSON.parse((document.getElementById("review-class-list") || { textContent: "[]" }).textContent);
  const modelLabel = (document.getElementById("model-label") || {}).textContent;
  function decide(decision, label) {
    if (!form) return;
    form.querySelector(`input[name=decision][value=${decision}]`).checked = true;
    form.querySelector("#final-label").value = decision === "correct" ? label : "";
    form.dataset.decision = decision;
  }
  if (form) form.querySelector("#final-label").addEventListener("change", (e) => { if (e.target.value) decide("correct", e.target.value); });
  const ARROWS = { ArrowLeft: [1, 0], ArrowRight: [-1, 0], ArrowUp: [0, 1], ArrowDown: [0, -1] };
  document.addEventListener("keydown", (e) => {
    const tag = e.target.tagName;
    const typing = ["TEXTAREA", "INPUT", "SELECT"].includes(tag) && e.target.type !== "radio" && e.target.type !== "checkbox" && e.target.type !== "range";
    if (e.key === "Enter" && (e.ctrlKey || e.metaKey) && form) {
      e.preventDefault();
      e.shiftKey && saveNext ? form.requestSubmit(saveNext) : form.requestSubmit();
      return;
    }
    if (typing || e.ctrlKey || e.metaKey || e.altKey) return;
    if (ARROWS[e.key]) {
      // Arrows keep their own meaning on radios, sliders and lists; elsewhere they pan the image.
      if (["INPUT", "SELECT", "TEXTAREA"].includes(tag)) return;
      const step = e.shiftKey ? 200 : 40;
      pan(ARROWS[e.key][0] * step, ARROWS[e.key][1] * step);
      e.preventDefault();
      return;
    }
    const key = e.key.toLowerCase();
    if (key === "+" || key === "=") zoom(1.25);
    else if (key === "-") zoom(0.8);
    else if (key === "r") { preset("default"); fit(); }
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
