// Small behaviours htmx does not cover. No inline scripts: the CSP allows only our own files.
document.addEventListener("keydown", (event) => {
  if (event.key !== "/" || event.ctrlKey || event.metaKey || event.altKey) return;
  const tag = (event.target.tagName || "").toLowerCase();
  if (tag === "input" || tag === "textarea" || tag === "select" || event.target.isContentEditable) return;
  const search = document.querySelector("[data-search]");
  if (search) { event.preventDefault(); search.focus(); }
});

// After a websocket (re)connects, re-fetch the fragments it feeds, so a page is never stale.
document.addEventListener("htmx:wsOpen", (event) => {
  const root = event.detail.elt;
  root.querySelectorAll("[data-refresh-url]").forEach((el) => {
    htmx.ajax("GET", el.dataset.refreshUrl, { target: el, swap: "outerHTML" });
  });
});
