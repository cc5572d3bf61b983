// metrictree report: clicking a metric (a node of the graph or a row of a table) shows its details.
// Static code: the page's data is in its HTML, escaped; nothing here builds markup from data.
(function () {
  "use strict";
  function show(id, scroll) {
    var panel = document.getElementById(id);
    if (!panel || !panel.classList.contains("mt-details")) { return; }
    document.querySelectorAll(".mt-details").forEach(function (p) { p.hidden = p !== panel; });
    document.querySelectorAll("[data-target]").forEach(function (el) {
      var on = el.getAttribute("data-target") === id;
      el.classList.toggle("mt-selected", on);
      if (el.hasAttribute("aria-pressed")) { el.setAttribute("aria-pressed", on ? "true" : "false"); }
    });
    document.querySelectorAll(".mt-edge").forEach(function (edge) {
      edge.classList.toggle("mt-lit", edge.getAttribute("data-from") === id || edge.getAttribute("data-to") === id);
    });
    if (scroll) { panel.scrollIntoView({block: "nearest"}); }
  }

  // Shorten an SVG text that is wider than the room it has (data-fit, in px), with an ellipsis; the full
  // text stays in the element's <title> and in the details.
  function fit(text) {
    var room = parseFloat(text.getAttribute("data-fit"));
    if (!(room > 0) || typeof text.getComputedTextLength !== "function") { return; }
    var full = text.textContent;
    if (text.getComputedTextLength() <= room) { return; }
    var lo = 0, hi = full.length;
    while (lo < hi) {
      var mid = Math.ceil((lo + hi) / 2);
      text.textContent = full.slice(0, mid).trimEnd() + "\u2026";
      if (text.getComputedTextLength() <= room) { lo = mid; } else { hi = mid - 1; }
    }
    text.textContent = full.slice(0, lo).trimEnd() + "\u2026";
  }

  document.querySelectorAll("svg text[data-fit]").forEach(fit);
  document.querySelectorAll("[data-target]").forEach(function (el) {
    // From a table row, or when the details sit under a wide graph, bring them into view.
    var scroll = el.tagName.toLowerCase() === "tr" || el.closest(".mt-wide") !== null;
    el.addEventListener("click", function () { show(el.getAttribute("data-target"), scroll); });
    el.addEventListener("keydown", function (event) {
      if (event.key === "Enter" || event.key === " ") {
        event.preventDefault();
        show(el.getAttribute("data-target"), scroll);
      }
    });
  });
  var first = document.querySelector(".mt-details:not([hidden])");
  if (first) { show(first.id, false); }
  document.body.setAttribute("data-ready", "1");
})();
