// Recipes page: dropping images on the drop zone puts them in the file input and submits the form
// (htmx sends it as multipart).
(() => {
  "use strict";
  const zone = document.querySelector("[data-dropzone]");
  if (!zone) return;
  const form = zone.closest("form");
  const input = zone.querySelector("input[type=file]");
  ["dragenter", "dragover"].forEach((name) => zone.addEventListener(name, (event) => {
    event.preventDefault();
    zone.classList.add("dragging");
  }));
  ["dragleave", "drop"].forEach((name) => zone.addEventListener(name, () => zone.classList.remove("dragging")));
  // Upload progress: htmx reports the request's upload progress; reading and matching follow it.
  const progress = document.getElementById("recipe-upload-progress");
  form.addEventListener("htmx:xhr:progress", (event) => {
    if (!progress || !event.detail.lengthComputable) return;
    progress.hidden = false;
    progress.value = Math.round((100 * event.detail.loaded) / event.detail.total);
  });
  form.addEventListener("htmx:afterRequest", () => { if (progress) progress.hidden = true; });
  zone.addEventListener("drop", (event) => {
    event.preventDefault();
    if (!event.dataTransfer || !event.dataTransfer.files.length) return;
    input.files = event.dataTransfer.files;
    form.requestSubmit();
  });
})();
