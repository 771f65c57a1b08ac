// Archive pages: let htmx show our refusal fragments (409 already imported, 413 too large, 422 bad
// request) in #archive-feedback instead of dropping 4xx bodies. No inline scripts (CSP).
(() => {
  "use strict";
  document.addEventListener("htmx:beforeSwap", (event) => {
    const status = event.detail.xhr.status;
    if ((status === 409 || status === 413 || status === 422) && document.getElementById("archive-feedback")) {
      event.detail.shouldSwap = true;
      event.detail.isError = false;
    }
  });
})();
