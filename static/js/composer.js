// Composer behaviours htmx does not cover (no inline scripts: the CSP allows only our own files).
(function () {
  "use strict";

  function changed(form) {
    // Let the preview (hx-trigger "change from:#composer-form") know the LoRA list changed.
    if (form) form.dispatchEvent(new Event("change", { bubbles: true }));
  }

  // Show each weight slider's value next to it as it moves.
  document.addEventListener("input", function (event) {
    var slider = event.target;
    if (!slider.matches || !slider.matches("input[data-weight-output]")) return;
    var output = document.getElementById(slider.dataset.weightOutput);
    if (output) output.value = slider.value;
  });

  // Remove a LoRA row.
  document.addEventListener("click", function (event) {
    var button = event.target.closest && event.target.closest("[data-remove-lora]");
    if (!button) return;
    var row = button.closest("[data-lora-row]");
    var form = button.closest("form");
    if (row) row.remove();
    changed(form);
  });

  // Enter in the LoRA search adds the first match, in the preset name saves the preset: never "Generate".
  document.addEventListener("keydown", function (event) {
    var input = event.target;
    if (event.key !== "Enter" || !input.dataset || !input.dataset.enterClicks) return;
    event.preventDefault();
    var target = document.querySelector(input.dataset.enterClicks);
    if (target) target.click();
  });

  // "Add to composition" on a suggestion (static/js/app.js asks with a "lora:add" event): add its row.
  document.addEventListener("lora:add", function (event) {
    var rows = document.getElementById("composer-loras");
    if (!rows || !event.detail.adapterId) return;
    event.preventDefault();
    htmx.ajax("GET", rows.dataset.rowUrl + "?adapter=" + encodeURIComponent(event.detail.adapterId),
      { target: rows, swap: "beforeend" }).then(function () { changed(document.getElementById("composer-form")); });
  });

  // The suggestions follow the prompt being written (their box re-queries on "input").
  document.addEventListener("input", function (event) {
    if (event.target.id !== "prompt") return;
    var box = document.getElementById("prompt-q");
    if (!box) return;
    box.value = event.target.value.replace(/<lora:[^>]*>/g, " ").slice(0, 1000);
    box.dispatchEvent(new Event("input", { bubbles: true }));
  });

  // After a LoRA row arrives (htmx swaps it in beforeend), go back to the search for the next one.
  document.addEventListener("htmx:afterSwap", function (event) {
    if (event.detail.target && event.detail.target.id === "composer-loras") {
      var search = document.getElementById("lora-search");
      if (search) search.focus();
    }
  });
})();
