// "Back" links (a.crm-back, the error pages): the browser's history, bound here because the
// Content-Security-Policy runs no javascript: link.
(function () {
    "use strict";
    document.querySelectorAll("a.crm-back").forEach(function (link) {
        link.addEventListener("click", function (event) {
            event.preventDefault();
            window.history.back();
        });
    });
})();
