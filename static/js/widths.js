// Bar widths and marker positions from data attributes: data-width="42.5" sets width: 42.5%,
// data-left="48" sets left: 48%. The Content-Security-Policy refuses inline style attributes;
// styles set from a script file through the DOM are allowed.
(function () {
  "use strict";

  function percent(value) {
    var number = parseFloat(value);
    if (!isFinite(number)) {
      return null;
    }
    return Math.min(Math.max(number, 0), 100) + "%";
  }

  function apply() {
    document.querySelectorAll("[data-width]").forEach(function (element) {
      var width = percent(element.getAttribute("data-width"));
      if (width !== null) {
        element.style.width = width;
      }
    });
    document.querySelectorAll("[data-left]").forEach(function (element) {
      var left = percent(element.getAttribute("data-left"));
      if (left !== null) {
        element.style.left = left;
      }
    });
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", apply);
  } else {
    apply();
  }
})();
