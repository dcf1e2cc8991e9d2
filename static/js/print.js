// The 「打印」 buttons of printable pages: any element with data-print opens the print dialog.
// Kept out of the templates so that pages carry no inline script.
(function () {
  "use strict";

  function bind() {
    document.querySelectorAll("[data-print]").forEach(function (button) {
      button.addEventListener("click", function (event) {
        event.preventDefault();
        window.print();
      });
    });
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", bind);
  } else {
    bind();
  }
})();
