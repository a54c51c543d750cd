/*
 * Fill notices on the cash market page: the #fill-notices poll (see
 * templates/market/_fill_notices_poll.html) fetches only while the tab is visible (its
 * `visibilitychange` trigger fetches once the tab is shown again). This is done here
 * rather than with `[...]` filters in hx-trigger: htmx evaluates those with Function(),
 * which the Content-Security-Policy forbids. The toasts it appends are armed and dismissed
 * by cash_market.js, as every toast of the page.
 */
(function () {
  "use strict";

  document.addEventListener("htmx:confirm", function (event) {
    var source = event.detail.elt;
    if (source && source.id === "fill-notices" && document.visibilityState !== "visible") {
      event.preventDefault();
    }
  });
})();
