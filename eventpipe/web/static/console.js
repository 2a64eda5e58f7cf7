// eventpipe console: live regions. An element with data-refresh-url is re-fetched every
// data-refresh-ms milliseconds and its content replaced, unless the user is typing inside it.
(function () {
  function refresh(el) {
    var ms = parseInt(el.getAttribute("data-refresh-ms") || "3000", 10);
    setTimeout(function tick() {
      if (el.contains(document.activeElement) && document.activeElement.tagName === "INPUT") {
        setTimeout(tick, ms);
        return;
      }
      fetch(el.getAttribute("data-refresh-url"), { credentials: "same-origin", headers: { "X-Requested-With": "fetch" } })
        .then(function (r) {
          if (r.redirected && r.url.indexOf("/login") !== -1) { window.location = r.url; return null; }
          return r.ok ? r.text() : null;
        })
        .then(function (html) {
          if (html !== null && html !== undefined) {
            el.innerHTML = html;
            el.setAttribute("data-refreshed", String(Date.now()));
          }
        })
        .catch(function () {})
        .then(function () { setTimeout(tick, ms); });
    }, ms);
  }
  document.addEventListener("DOMContentLoaded", function () {
    document.querySelectorAll("[data-refresh-url]").forEach(refresh);
  });
})();
