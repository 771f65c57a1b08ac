// Composer behaviours htmx does not cover: the LoRA rows, the LoRA search combobox, presets on Enter.
(() => {
  "use strict";

  function changed(form) {
    // Let the preview (hx-trigger "change from:#composer-form") know the LoRA list changed.
    if (form) form.dispatchEvent(new Event("change", { bubbles: true }));
  }

  // Show each weight slider's value next to it as it moves.
  document.addEventListener("input", (event) => {
    const slider = event.target;
    if (!slider.matches || !slider.matches("input[data-weight-output]")) return;
    const output = document.getElementById(slider.dataset.weightOutput);
    if (output) output.value = slider.value;
  });

  // Remove a LoRA row.
  document.addEventListener("click", (event) => {
    const button = event.target.closest && event.target.closest("[data-remove-lora]");
    if (!button) return;
    const row = button.closest("[data-lora-row]");
    const form = button.closest("form");
    if (row) row.remove();
    changed(form);
  });

  // Enter in the preset name saves the preset: never "Generate".
  document.addEventListener("keydown", (event) => {
    const input = event.target;
    if (event.key !== "Enter" || !input.dataset || !input.dataset.enterClicks) return;
    event.preventDefault();
    const target = document.querySelector(input.dataset.enterClicks);
    if (target) target.click();
  });

  // The "Add a LoRA" search is a combobox: focus stays in the input, ↑/↓ move the highlight
  // through the results, Enter adds the highlighted LoRA (never submits the form), Escape clears.
  let pendingAdd = null;  // the query an early Enter is waiting for

  function options() {
    const list = document.getElementById("lora-search-results");
    return list ? Array.from(list.querySelectorAll("[role=option]")) : [];
  }

  function highlight(search, option) {
    options().forEach((li) => {
      const on = li === option;
      li.classList.toggle("highlighted", on);
      li.setAttribute("aria-selected", on ? "true" : "false");
    });
    if (option) {
      search.setAttribute("aria-activedescendant", option.id);
      option.scrollIntoView({ block: "nearest" });
    } else {
      search.removeAttribute("aria-activedescendant");
    }
  }

  function highlighted() {
    const all = options();
    return all.find((li) => li.classList.contains("highlighted")) || all[0] || null;
  }

  function addHighlighted() {
    const option = highlighted();
    const button = option && option.querySelector("button.pick");
    if (button) button.click();
  }

  document.addEventListener("keydown", (event) => {
    const search = event.target;
    if (!search.matches || !search.matches("input[data-lora-search]")) return;
    if (event.key === "ArrowDown" || event.key === "ArrowUp") {
      event.preventDefault();
      const all = options();
      if (!all.length) return;
      let at = all.indexOf(highlighted());
      at = event.key === "ArrowDown" ? Math.min(all.length - 1, at + 1) : Math.max(0, at - 1);
      highlight(search, all[at]);
    } else if (event.key === "Enter") {
      event.preventDefault();
      const list = document.getElementById("lora-search-results");
      if (list && list.dataset.query === search.value.trim()) {
        addHighlighted();
        return;
      }
      // Typed faster than the search answered: search now, and add the best match of what was typed
      // when its results arrive (see htmx.onLoad below).
      pendingAdd = search.value.trim();
      htmx.trigger(search, "lora-search-now");
    } else if (event.key === "Escape" && search.value) {
      event.preventDefault();
      search.value = "";
      search.dispatchEvent(new Event("input", { bubbles: true }));
    }
  });

  // Typing in the search changes nothing in the composition: keep its events from re-running the
  // preview (which listens on the form). Stopped at the search's parent, after htmx saw them.
  const searchBox = document.querySelector("input[data-lora-search]");
  if (searchBox) {
    ["input", "change"].forEach((type) => {
      searchBox.parentNode.addEventListener(type, (event) => {
        if (event.target === searchBox) event.stopPropagation();
      });
    });
  }

  // Fresh results: their first one is highlighted (tell assistive technology); an Enter that came
  // before them adds it now.
  htmx.onLoad((element) => {
    if (element.id !== "lora-search-results") return;
    const search = document.querySelector("input[data-lora-search]");
    if (search) highlight(search, highlighted());
    if (pendingAdd !== null && element.dataset.query === pendingAdd) {
      pendingAdd = null;
      addHighlighted();
    }
  });

  // A click on a result adds it too (the mouse way); keep the input focused for the next search.
  document.addEventListener("mousedown", (event) => {
    if (event.target.closest && event.target.closest("#lora-search-results [role=option]")) event.preventDefault();
  });

  // "Add to composition" on a suggestion (static/js/app.js asks with a "lora:add" event): add its row.
  document.addEventListener("lora:add", (event) => {
    const rows = document.getElementById("composer-loras");
    if (!rows || !event.detail.adapterId) return;
    event.preventDefault();
    // The row's response asks for a preview after it is swapped in (HX-Trigger-After-Swap).
    htmx.ajax("GET", rows.dataset.rowUrl + "?adapter=" + encodeURIComponent(event.detail.adapterId),
      { target: rows, swap: "beforeend" });
  });

  // The suggestions follow the prompt being written (their box re-queries on "input").
  document.addEventListener("input", (event) => {
    if (event.target.id !== "prompt") return;
    const box = document.getElementById("prompt-q");
    if (!box) return;
    box.value = event.target.value.replace(/<lora:[^>]*>/g, " ").slice(0, 1000);
    box.dispatchEvent(new Event("input", { bubbles: true }));
  });

  // After a LoRA row arrives (htmx swaps it in beforeend), go back to the search for the next one.
  document.addEventListener("htmx:afterSwap", (event) => {
    if (event.detail.target && event.detail.target.id === "composer-loras") {
      const search = document.getElementById("lora-search");
      if (search) search.focus();
    }
  });
})();
