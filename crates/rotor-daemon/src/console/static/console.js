// rotor console: live updates. When a stage changes (the daemon's watch hub), fetch this
// page again and swap its <main>, so forms keep working and nothing else moves. No framework.
(function () {
  "use strict";
  if (!document.body || !document.body.dataset.live || !window.EventSource) return;
  var timer = null;
  function refresh() {
    timer = null;
    fetch(location.pathname, { credentials: "same-origin" })
      .then(function (r) { return r.ok ? r.text() : null; })
      .then(function (text) {
        if (!text) return;
        var fresh = new DOMParser().parseFromString(text, "text/html").querySelector("main");
        var main = document.querySelector("main");
        var busy = document.activeElement && main && main.contains(document.activeElement) &&
          document.activeElement.tagName === "INPUT";
        if (fresh && main && !busy) main.replaceWith(fresh);
      })
      .catch(function () {});
  }
  var events = new EventSource("/console/events");
  // Let go of the stream when the page goes away: browsers allow six HTTP/1.1 connections
  // per host, and a page kept for "back" would otherwise hold one.
  window.addEventListener("pagehide", function () { events.close(); });
  events.addEventListener("stage_change", function () {
    if (!timer) timer = setTimeout(refresh, 300);
  });
})();
