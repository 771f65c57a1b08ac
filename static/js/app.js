// Small behaviours htmx does not cover. No inline scripts: the CSP allows only our own files.
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
    htmx.ajax("GET", el.dataset.refreshUrl, { target: el, swap: "outerHTML" });
  });
});

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
