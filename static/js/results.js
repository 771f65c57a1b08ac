// Job and sweep pages: show our rating errors (403 "this result is private", 422 bad rating) in place.
// htmx drops 4xx bodies unless told otherwise; these fragments are meant for the page.
(() => {
  "use strict";
  document.addEventListener("htmx:beforeSwap", (event) => {
    const status = event.detail.xhr.status;
    const target = event.detail.target;
    if ((status === 403 || status === 422) && target && target.closest(".rating, .job-results, .adapter-results")) {
      event.detail.shouldSwap = true;
      event.detail.isError = false;
    }
  });
})();
