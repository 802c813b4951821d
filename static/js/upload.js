// Upload page: drag-and-drop or file picker, and an XHR post so the upload shows a progress
// bar. Without JavaScript the form still posts normally.
(function () {
  const form = document.getElementById("upload-form");
  if (!form) return;
  const input = form.querySelector("input[type=file]");
  const zone = document.getElementById("dropzone");
  const chosen = document.getElementById("chosen-file");
  const progress = document.getElementById("upload-progress");
  const progressText = document.getElementById("upload-progress-text");
  const errors = document.getElementById("upload-errors");
  const submit = document.getElementById("upload-submit");

  const preview = document.getElementById("upload-preview");
  const previewImage = document.getElementById("upload-preview-image");
  const previewCaption = document.getElementById("upload-preview-caption");
  let previewUrl = null;

  // A preview of the chosen image from a local object URL (nothing is sent yet). Browsers cannot
  // draw DICOM: for those the file name is shown, the image appears after the upload.
  function showPreview(file) {
    if (previewUrl) { URL.revokeObjectURL(previewUrl); previewUrl = null; }
    if (!file) { preview.hidden = true; previewImage.removeAttribute("src"); return; }
    const drawable = /^image\/(png|jpeg)$/.test(file.type) || /\.(png|jpe?g)$/i.test(file.name);
    if (drawable) {
      previewUrl = URL.createObjectURL(file);
      previewImage.src = previewUrl;
      previewImage.hidden = false;
      previewCaption.textContent = file.name;
    } else {
      previewImage.removeAttribute("src");
      previewImage.hidden = true;
      previewCaption.textContent = file.name + " (DICOM: shown after the upload)";
    }
    preview.hidden = false;
  }

  // Not a picture the browser can draw (a damaged or mislabelled file): no broken image.
  previewImage.addEventListener("error", () => {
    if (!previewImage.getAttribute("src")) return;
    previewImage.hidden = true;
    previewCaption.textContent += " (no preview: the browser cannot show this file)";
  });

  function showChosen() {
    chosen.textContent = input.files.length ? "Selected: " + input.files[0].name : "";
    errors.innerHTML = ""; // a new file: the previous file's error no longer applies
    input.removeAttribute("aria-invalid");
    showPreview(input.files.length ? input.files[0] : null);
  }
  function showError(message) {
    errors.innerHTML = "";
    const p = document.createElement("p");
    p.className = "error";
    p.setAttribute("role", "alert");
    p.textContent = message;
    errors.appendChild(p);
    input.setAttribute("aria-invalid", "true");
  }

  input.addEventListener("change", showChosen);
  ["dragenter", "dragover"].forEach((name) => zone.addEventListener(name, (event) => {
    event.preventDefault();
    zone.classList.add("dragging");
  }));
  ["dragleave", "drop"].forEach((name) => zone.addEventListener(name, () => zone.classList.remove("dragging")));
  zone.addEventListener("drop", (event) => {
    event.preventDefault();
    if (event.dataTransfer && event.dataTransfer.files.length) {
      input.files = event.dataTransfer.files;
      showChosen();
    }
  });

  form.addEventListener("submit", (event) => {
    if (!window.FormData || !window.XMLHttpRequest) return; // plain form post
    event.preventDefault();
    if (!input.files.length) { showError("Please choose an image to upload."); return; }
    const xhr = new XMLHttpRequest();
    xhr.open("POST", form.action);
    xhr.setRequestHeader("Accept", "application/json");
    xhr.upload.addEventListener("progress", (e) => {
      if (!e.lengthComputable) return;
      const percent = Math.round((e.loaded / e.total) * 100);
      progress.value = percent;
      progressText.textContent = percent < 100 ? `Uploading… ${percent}%` : "Checking the image…";
    });
    xhr.addEventListener("load", () => {
      let body = null;
      try { body = JSON.parse(xhr.responseText); } catch (e) { /* not JSON */ }
      if (xhr.status >= 200 && xhr.status < 300 && body && body.redirect) {
        progressText.textContent = "Uploaded.";
        window.location.assign(body.redirect);
        return;
      }
      submit.disabled = false;
      progress.hidden = true;
      progressText.textContent = "";
      showError(body && body.error ? body.error.message : `The upload failed (HTTP ${xhr.status}).`);
    });
    xhr.addEventListener("error", () => {
      submit.disabled = false;
      progress.hidden = true;
      showError("The upload failed: the connection was interrupted. Please try again.");
    });
    errors.innerHTML = "";
    submit.disabled = true;
    progress.hidden = false;
    progress.value = 0;
    progressText.textContent = "Uploading… 0%";
    xhr.send(new FormData(form));
  });
})();
