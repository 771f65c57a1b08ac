// How htmx treats failures: which error answers are swapped into the page, and websocket errors on leaving.
(() => {
  "use strict";

  // The one place that decides which error answers htmx swaps (the one htmx:beforeSwap handler).
  // htmx drops the body of a 4xx/5xx answer. Ours carry a fragment meant for the page:
  //   403 "this result is private", 404 "removed meanwhile", 409 "already imported" / "nothing to undo",
  //   413 "too large", 422 form errors, 503 "the job queue (Redis) is down" (into #service-alert, HX-Retarget).
  // Those are swapped where the request targeted (or where HX-Retarget says). A full document (Django's own
  // error pages, a proxy's 502) is never swapped into a fragment's place; htmx reports it as an error as usual.
  const SHOWN = new Set([403, 404, 409, 413, 422, 503]);

  document.addEventListener("htmx:beforeSwap", (event) => {
    const xhr = event.detail.xhr;
    if (!SHOWN.has(xhr.status)) return;
    const body = (xhr.responseText || "").trimStart().slice(0, 15).toLowerCase();
    if (body.startsWith("<!doctype") || body.startsWith("<html")) return;
    event.detail.shouldSwap = true;
    event.detail.isError = false;
  });

  // A websocket still connecting when the user leaves the page fails with an "error" event, which htmx's ws
  // extension logs as an error ("[object Event]"). Leaving is not a failure: such errors are dropped; every
  // other socket error still reaches htmx (and its reconnect logic) as before.
  let leaving = false;
  window.addEventListener("beforeunload", () => { leaving = true; });
  window.addEventListener("pagehide", () => { leaving = true; });
  window.addEventListener("pageshow", () => { leaving = false; });
  htmx.createWebSocket = (url) => {
    const socket = new WebSocket(url, []);
    socket.binaryType = htmx.config.wsBinaryType || "blob";
    let handler = null;
    Object.defineProperty(socket, "onerror", {
      configurable: true,
      get: () => handler,
      set: (fn) => { handler = fn; },
    });
    socket.addEventListener("error", (event) => {
      if (!leaving && handler) handler(event);
    });
    return socket;
  };
})();
