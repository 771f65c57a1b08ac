// Small behaviours of every page that htmx does not cover (loaded by base.html after htmx, deferred).
// The style of every file in static/js: one `(() => { "use strict"; … })();` per file, const/let,
// arrow functions for listeners, named functions for helpers, listeners delegated from document (so
// swapped-in fragments need no re-binding), no inline scripts or on* attributes (the CSP forbids them).
(() => {
  "use strict";

  document.addEventListener("keydown", (event) => {
    if (event.key !== "/" || event.ctrlKey || event.metaKey || event.altKey) return;
    const tag = (event.target.tagName || "").toLowerCase();
    if (tag === "input" || tag === "textarea" || tag === "select" || event.target.isContentEditable) return;
    const search = document.querySelector("[data-search]");
    if (search) { event.preventDefault(); search.focus(); }
  });

  // Panels marked data-collapse-narrow (gallery filters, bulk actions) start closed on a phone-sized
  // screen, so the results come first; on wider screens they are always open (their summary is hidden).
  const NARROW = window.matchMedia("(max-width: 900px)");

  function collapseNarrow(root) {
    if (!NARROW.matches) return;
    root.querySelectorAll("details[data-collapse-narrow][open]").forEach((el) => el.removeAttribute("open"));
  }
  document.addEventListener("DOMContentLoaded", () => collapseNarrow(document));
  NARROW.addEventListener("change", () => {
    if (NARROW.matches) collapseNarrow(document);
    else document.querySelectorAll("details[data-collapse-narrow]").forEach((el) => el.setAttribute("open", ""));
  });

  // After a websocket (re)connects, re-fetch the fragments it feeds, so a page is never stale.
  document.addEventListener("htmx:wsOpen", (event) => {
    const root = event.detail.elt;
    root.querySelectorAll("[data-refresh-url]").forEach((el) => {
      if (!el.dataset.refreshUrl || !el.id) return;
      // Only the element itself out of the answer: a status view may answer with the whole panel, and a
      // panel swapped into its own content would open a second websocket.
      htmx.ajax("GET", el.dataset.refreshUrl, { target: el, swap: "outerHTML", select: "#" + el.id });
    });
  });

  // A progress panel (scan, embedding, archive run) owns its websocket and the server re-renders that
  // same panel. Swapping it whole would close the socket and open a new one, which sends the panel
  // again: a reconnect loop. While the run is active (the new panel still has ws-connect) only its
  // content is swapped; once finished the panel is replaced by one without ws-connect, which closes
  // the socket for good, so a finished run is never reconnected to.
  document.addEventListener("htmx:wsBeforeMessage", (event) => {
    const owner = event.detail.elt;
    if (!owner || !owner.id) return;
    const template = document.createElement("template");
    template.innerHTML = event.detail.message;
    const panel = template.content.getElementById(owner.id);
    if (!panel || !panel.hasAttribute("ws-connect")) return;
    event.preventDefault();
    htmx.swap(owner, panel.innerHTML, { swapStyle: "innerHTML" });
  });

  // Websockets refused or dropped (the server restarting, Redis down) retry after a growing, jittered
  // delay: 1 s, 2 s, 4 s ... up to a minute.
  // (htmx and its ws extension load before this file: all three are deferred, in order.)
  if (window.htmx) {
    htmx.config.wsReconnectDelay = (retries) => Math.min(60000, 1000 * 2 ** Math.min(retries, 6)) * (0.5 + Math.random() / 2);
  }

  // Recommendations: "Add to composition" asks whoever composes (a cancelable "lora:add" event with
  // {adapterId, token}); when nothing handles it, the <lora:...> token is copied to the clipboard.
  document.addEventListener("click", (event) => {
    const button = event.target.closest(".add-to-composition");
    if (!button) return;
    const detail = { adapterId: button.dataset.adapterId, token: button.dataset.loraToken };
    const handled = !document.dispatchEvent(new CustomEvent("lora:add", { detail, cancelable: true }));
    if (handled || !navigator.clipboard) return;
    navigator.clipboard.writeText(detail.token).then(() => {
      button.textContent = "Copied " + detail.token;
    }, () => {});
  });
})();
