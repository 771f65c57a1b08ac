// Library gallery, detail and tags pages: selection (page, shift-click range, "all matching"),
// copy buttons, dismissable confirmations, NSFW previews and reloading after a scan. (Which error
// answers htmx swaps in is decided once, in htmx-errors.js.)
(() => {
  "use strict";
  let lastClicked = null;

  // A scan tells the gallery when there is something new to show: whenever its status fragment arrives
  // (websocket or refresh) with another phase than before, or finished, the results and facets reload.
  let scanState = null;
  const readScanState = () => {
    const el = document.getElementById("scan-progress");
    return el ? `${el.dataset.active || ""}:${el.dataset.phase || ""}` : null;
  };
  document.addEventListener("DOMContentLoaded", () => { scanState = readScanState(); });
  const scanChanged = () => {
    const state = readScanState();
    if (state === null || state === scanState) return;
    const wasActive = scanState !== null && scanState.startsWith("1:");
    scanState = state;
    // New rows exist once reading is over (hashing, thumbnails) and when the run ends.
    if (state.startsWith("1:hashing") || state.startsWith("1:thumbnails") || (wasActive && !state.startsWith("1:"))) {
      htmx.trigger(document.body, "gallery-changed");
    }
  };
  document.addEventListener("htmx:afterSettle", scanChanged);
  document.addEventListener("htmx:oobAfterSwap", scanChanged);
  document.addEventListener("htmx:wsAfterMessage", scanChanged);

  // A blurred (NSFW) preview: the first click shows it instead of opening the adapter.
  document.addEventListener("click", (event) => {
    const image = event.target.closest("img[data-nsfw-reveal]");
    if (!image || !image.classList.contains("nsfw-blur")) return;
    event.preventDefault();
    image.classList.remove("nsfw-blur");
    image.removeAttribute("title");
  });

  const boxes = () => Array.from(document.querySelectorAll("#adapter-results [data-select]"));

  function updateCount() {
    const label = document.getElementById("selection-count");
    if (!label) return;
    const all = document.querySelector("#adapter-results [data-select-all]");
    const results = document.getElementById("adapter-results");
    if (all && all.checked) {
      const total = Number(results.dataset.total || 0).toLocaleString();
      label.textContent = `All ${total} matching adapters selected`;
      return;
    }
    const count = boxes().filter((box) => box.checked).length;
    label.textContent = count ? `${count} selected on this page` : "No adapters selected";
  }

  document.addEventListener("click", (event) => {
    const box = event.target.closest("[data-select]");
    if (!box) return;
    const list = boxes();
    if (event.shiftKey && lastClicked && list.includes(lastClicked)) {
      const [from, to] = [list.indexOf(lastClicked), list.indexOf(box)].sort((a, b) => a - b);
      list.slice(from, to + 1).forEach((other) => { other.checked = box.checked; });
    }
    lastClicked = box;
  });

  // The search box already refreshes the results on input; its "change" (fired when it loses focus,
  // e.g. on clicking "select all") must not reach the filter form, or the refresh would wipe the
  // selection just made.
  document.addEventListener("change", (event) => {
    if (event.target.matches("[data-search]")) event.stopPropagation();
  }, true);

  document.addEventListener("change", (event) => {
    const target = event.target;
    if (target.matches("[data-select-page]")) {
      boxes().forEach((box) => { box.checked = target.checked; });
    } else if (target.matches("[data-select-all]")) {
      boxes().forEach((box) => { box.checked = target.checked; });
      const page = document.querySelector("#adapter-results [data-select-page]");
      if (page) page.checked = target.checked;
    } else if (target.matches("[data-select]") && !target.checked) {
      const all = document.querySelector("#adapter-results [data-select-all]");
      if (all) all.checked = false;
    } else if (!target.matches("[data-select]")) {
      return;
    }
    updateCount();
  });

  document.addEventListener("htmx:afterSettle", (event) => {
    if (event.detail.elt && event.detail.elt.id === "adapter-results") {
      lastClicked = null;
    }
    updateCount();
  });

  // A "Cancel" link in a confirmation: without JavaScript it goes back to the list; with it, it just closes.
  document.addEventListener("click", (event) => {
    const dismiss = event.target.closest("[data-dismiss]");
    if (!dismiss) return;
    const holder = dismiss.closest("#feedback");
    if (!holder) return;
    event.preventDefault();
    holder.replaceChildren();
  });

  // Copy buttons: <button data-copy="text">.
  function fallbackCopy(text) {
    const area = document.createElement("textarea");
    area.value = text;
    area.setAttribute("readonly", "");
    area.className = "offscreen";
    document.body.append(area);
    area.select();
    let ok = false;
    try { ok = document.execCommand("copy"); } catch (error) { ok = false; }
    area.remove();
    return ok ? Promise.resolve() : Promise.reject(new Error("copy refused"));
  }

  document.addEventListener("click", (event) => {
    const button = event.target.closest("[data-copy]");
    if (!button) return;
    event.preventDefault();
    const text = button.dataset.copy;
    const copying = navigator.clipboard && window.isSecureContext
      ? navigator.clipboard.writeText(text).catch(() => fallbackCopy(text))
      : fallbackCopy(text);
    const original = button.dataset.label || button.innerHTML;
    button.dataset.label = original;
    copying.then(
      () => { button.textContent = "Copied"; button.classList.add("copied"); },
      () => { button.textContent = "Copy failed"; },
    ).finally(() => {
      window.setTimeout(() => { button.innerHTML = original; button.classList.remove("copied"); }, 1500);
    });
  });

  document.addEventListener("DOMContentLoaded", updateCount);
})();
