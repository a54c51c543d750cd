/*
 * Cash market page: small enhancements on top of htmx. The page works without this file
 * (book prices are links, forms post and redirect).
 *
 * - Clicking a price level in the order book fills the limit price and switches the order
 *   form to LIMIT (instead of following the link).
 * - The order book keeps its scroll position when a poll swaps in a new book.
 * - The order book polls only while the tab is visible (and refreshes when it becomes
 *   visible again). This is done here rather than with `[...]` filters in hx-trigger:
 *   htmx evaluates those with Function(), which the Content-Security-Policy forbids.
 * - A bodiless 304 from the book poll is never swapped (also set in the page's htmx-config).
 * - Order-form answers land newest-last, and a live preview of unchanged inputs never
 *   replaces the confirmation step. The estimate re-requests itself when the book or the
 *   balances change (a re-quote while the confirmation is open), but never while another
 *   order-form request is on its way, whose answer it would otherwise overtake.
 * - Keyboard: Enter in a field presses the visible Review (busy while it loads); Escape
 *   closes the confirmation; after Edit, focus is back in the amount input.
 * - The book's live status: "Live · updated hh:mm:ss" while polls answer (a 304 too),
 *   "Stale" when they go unanswered or some fail, "Offline" when they keep failing.
 * - Toasts dismiss themselves after a while, or on their close button.
 * - Book levels whose quantity changed since the last poll flash briefly (not with
 *   prefers-reduced-motion: see the page's CSS); the price chart polls only while visible.
 */
(function () {
  "use strict";

  var TOAST_MS = 8000;
  var bookScrollTop = null;

  function orderForm() {
    return document.getElementById("order-form");
  }

  // --- Book level → limit price ----------------------------------------------------------
  document.addEventListener("click", function (event) {
    var level = event.target.closest("[data-book-price]");
    var form = orderForm();
    if (!level || !form || event.ctrlKey || event.metaKey || event.shiftKey) {
      return;
    }
    event.preventDefault();
    var limit = form.querySelector('input[name="order_type"][value="LIMIT"]');
    if (limit && !limit.checked) {
      limit.checked = true;
      limit.dispatchEvent(new Event("change", { bubbles: true }));
    }
    var price = form.querySelector('input[name="price"]');
    if (!price) {
      return;
    }
    price.value = level.getAttribute("data-book-price");
    price.dispatchEvent(new Event("input", { bubbles: true }));
    price.classList.remove("price-flash");
    void price.offsetWidth; // restart the animation
    price.classList.add("price-flash");
    var quantity = form.querySelector('input[name="quantity"]');
    if (quantity && quantity.offsetParent !== null) {
      quantity.focus({ preventScroll: true });
    }
  });

  // --- Order entry: responses in order, and the confirmation step survives late previews ---
  // Live previews (debounced), Review, MAX and placing all swap parts of the order form.
  // Only the newest request's answer may land; an older one arriving late is dropped.
  // And a preview of exactly the inputs a Review is showing (or fetching) is not sent at
  // all, so typing and then pressing Review within the debounce never loses the Confirm
  // button.
  var issued = 0;
  var applied = 0;
  var reviewing = null; // the inputs of a Review request in flight
  var entries = []; // order-form requests in flight, other than the estimate's refresh

  function inputSignature(form) {
    return ["side", "order_type", "amount_mode", "price", "quantity", "eur_budget"]
      .map(function (name) {
        var field = form.elements[name];
        return field ? field.value : "";
      })
      .join("|");
  }

  function inOrderForm(elt) {
    return elt && elt.closest && elt.closest("#order-form");
  }

  function isReview(elt) {
    return elt && elt.getAttribute && elt.getAttribute("name") === "review";
  }

  document.addEventListener("htmx:confirm", function (event) {
    var source = event.detail.elt;
    var form = orderForm();
    if (!source || (source.id !== "order-inputs" && source.id !== "order-preview") || !form) {
      return;
    }
    var current = inputSignature(form);
    var confirmBar = document.querySelector("[data-testid=order-confirm]");
    if (source.id === "order-preview") {
      // The estimate's own refresh (book or balances changed): not while a preview, Review,
      // MAX or placement is on its way; their answers are newer than what it would bring.
      entries = entries.filter(function (xhr) {
        return xhr.readyState > 0 && xhr.readyState < 4;
      });
      if (entries.length) {
        event.preventDefault();
      }
      return;
    }
    if (reviewing === current || (confirmBar && confirmBar.getAttribute("data-inputs") === current)) {
      event.preventDefault();
    }
  });

  document.addEventListener("htmx:beforeRequest", function (event) {
    var elt = event.detail.elt;
    if (!inOrderForm(elt)) {
      return;
    }
    event.detail.xhr.orderSequence = ++issued;
    if (elt.id !== "order-preview") {
      entries.push(event.detail.xhr);
    }
    if (isReview(elt)) {
      reviewing = inputSignature(orderForm());
      elt.setAttribute("aria-busy", "true");
    }
  });

  document.addEventListener("htmx:afterRequest", function (event) {
    var elt = event.detail.elt;
    if (isReview(elt)) {
      reviewing = null;
      elt.removeAttribute("aria-busy");
    }
    if (elt && elt.hasAttribute && elt.hasAttribute("data-edit-order") && event.detail.successful) {
      focusAmount();
    }
  });

  // --- Order entry: keyboard ---------------------------------------------------------------
  function focusAmount() {
    var form = orderForm();
    if (!form) {
      return;
    }
    var inputs = form.querySelectorAll('input[name="quantity"], input[name="eur_budget"]');
    for (var i = 0; i < inputs.length; i++) {
      if (inputs[i].offsetParent !== null) {
        inputs[i].focus();
        return;
      }
    }
  }

  // Enter in a field clicks the form's default button, a hidden Review first in the
  // document: press the visible Review instead, which shows that it is busy.
  document.addEventListener(
    "click",
    function (event) {
      var fallback = event.target.closest && event.target.closest("[data-default-review]");
      var review = document.querySelector("[data-testid=review-order]");
      if (!fallback || !review) {
        return;
      }
      event.preventDefault();
      event.stopPropagation();
      if (!review.disabled) {
        review.click();
      }
    },
    true
  );

  document.addEventListener("keydown", function (event) {
    if (event.key !== "Escape" || event.defaultPrevented) {
      return;
    }
    var edit = document.querySelector("[data-testid=order-confirm] [data-edit-order]");
    if (edit) {
      event.preventDefault();
      edit.click();
    }
  });

  // A re-quote re-renders the confirmation: focus stays on its button, if it was there.
  var confirmHadFocus = false;
  document.addEventListener("htmx:beforeSwap", function (event) {
    var target = event.detail.target;
    confirmHadFocus = !!(target && target.id === "order-preview" && target.contains(document.activeElement));
  });
  document.addEventListener("htmx:afterSwap", function () {
    if (!confirmHadFocus) {
      return;
    }
    confirmHadFocus = false;
    var next = document.querySelector(
      "[data-testid=confirm-order]:not(:disabled), [data-testid=review-again], [data-edit-order]"
    );
    if (next) {
      next.focus({ preventScroll: true });
    } else {
      focusAmount();
    }
  });

  document.addEventListener("htmx:beforeSwap", function (event) {
    var sequence = event.detail.xhr && event.detail.xhr.orderSequence;
    if (!sequence) {
      return;
    }
    if (sequence < applied) {
      event.detail.shouldSwap = false;
    } else {
      applied = sequence;
    }
  });

  // An edited field loses its error message: it is about a value that is gone.
  document.addEventListener("input", function (event) {
    var field = event.target;
    if (!inOrderForm(field) || !field.name || field.getAttribute("aria-invalid") !== "true") {
      return;
    }
    var message = document.querySelector('[data-error-for="' + field.name + '"]');
    if (message) {
      message.remove();
    }
    field.removeAttribute("aria-invalid");
    field.classList.remove("border-red-400", "focus:ring-red-300");
    field.classList.add("border-slate-300", "focus:border-slate-500", "focus:ring-slate-200");
  });

  // --- Order book: poll only while visible, no swap on 304, keep the scroll position -------
  // Its triggers are `every 2s`, `market-changed` and `visibilitychange`; none of them
  // fetches while the page is hidden.
  document.addEventListener("htmx:confirm", function (event) {
    var source = event.detail.elt;
    if (source && source.id === "order-book" && document.visibilityState !== "visible") {
      event.preventDefault();
    }
  });

  document.addEventListener("htmx:beforeSwap", function (event) {
    if (event.detail.xhr && event.detail.xhr.status === 304) {
      event.detail.shouldSwap = false;
      return;
    }
    var target = event.detail.target;
    if (target && target.id === "order-book") {
      var scroller = document.getElementById("order-book-scroll");
      bookScrollTop = scroller ? scroller.scrollTop : null;
    }
  });

  document.addEventListener("htmx:afterSwap", function (event) {
    if (event.target && event.target.id === "order-book" && bookScrollTop !== null) {
      var scroller = document.getElementById("order-book-scroll");
      if (scroller) {
        scroller.scrollTop = bookScrollTop;
      }
      bookScrollTop = null;
    }
  });

  // --- Live status of the book's polls --------------------------------------------------------
  // The book polls every 2 s; any answer (a 304 included) is a sign of life.
  var STALE_AFTER_MS = 7000; // no answer for three polls and a bit
  var OFFLINE_AFTER_FAILURES = 3; // failed polls in a row
  var live = { updated: new Date(), failures: 0 };

  function clock(date) {
    return [date.getUTCHours(), date.getUTCMinutes(), date.getUTCSeconds()]
      .map(function (part) {
        return (part < 10 ? "0" : "") + part;
      })
      .join(":");
  }

  function liveState() {
    if (navigator.onLine === false || live.failures >= OFFLINE_AFTER_FAILURES) {
      return "offline";
    }
    if (live.failures > 0 || Date.now() - live.updated.getTime() > STALE_AFTER_MS) {
      return "stale";
    }
    return "live";
  }

  var LIVE_LABELS = { live: "Live · updated ", stale: "Stale · updated ", offline: "Offline · last update " };

  function showLiveStatus() {
    var status = document.querySelector("[data-live-status]");
    var text = status && status.querySelector("[data-live-text]");
    if (!text) {
      return;
    }
    var state = liveState();
    text.textContent = LIVE_LABELS[state] + clock(live.updated);
    status.setAttribute("data-state", state);
    status.hidden = false;
  }

  document.addEventListener("htmx:afterRequest", function (event) {
    var elt = event.detail.elt;
    if (!elt || elt.id !== "order-book") {
      return;
    }
    var status = event.detail.xhr ? event.detail.xhr.status : 0;
    if (status >= 200 && status < 400) {
      live.updated = new Date();
      live.failures = 0;
    } else {
      live.failures += 1; // a network error (status 0), a timeout or a server error
    }
    showLiveStatus();
  });
  // A swapped-in book comes with the status hidden, as the server renders it.
  document.addEventListener("htmx:afterSwap", showLiveStatus);
  window.addEventListener("offline", showLiveStatus);
  window.addEventListener("online", showLiveStatus);
  window.setInterval(showLiveStatus, 1000);
  showLiveStatus();

  // --- Order book: flash the levels that changed since the last poll ---------------------
  // Compared before and after the swap by side, price and quantity. A new depth or grouping
  // (data-book-shape) is a different book, not a change: nothing flashes then.
  var previousLevels = null;

  function bookLevels(book) {
    var levels = {};
    Array.prototype.forEach.call(book.querySelectorAll("[data-book-price]"), function (level) {
      var key = level.getAttribute("data-book-side") + " " + level.getAttribute("data-book-price");
      levels[key] = level.getAttribute("data-book-quantity");
    });
    return { shape: book.getAttribute("data-book-shape"), levels: levels };
  }

  document.addEventListener("htmx:beforeSwap", function (event) {
    var target = event.detail.target;
    if (target && target.id === "order-book" && event.detail.shouldSwap) {
      previousLevels = bookLevels(target);
    }
  });

  document.addEventListener("htmx:afterSettle", function () {
    var book = document.getElementById("order-book");
    if (!book || !previousLevels) {
      return;
    }
    var before = previousLevels;
    previousLevels = null;
    if (before.shape !== book.getAttribute("data-book-shape")) {
      return;
    }
    Array.prototype.forEach.call(book.querySelectorAll("[data-book-price]"), function (level) {
      var key = level.getAttribute("data-book-side") + " " + level.getAttribute("data-book-price");
      if (before.levels[key] !== level.getAttribute("data-book-quantity")) {
        level.classList.add("book-level-changed");
        window.setTimeout(function () {
          level.classList.remove("book-level-changed");
        }, 1500);
      }
    });
  });

  // --- Price chart: poll only while visible (its 304s are never swapped, as the book's) ---
  document.addEventListener("htmx:confirm", function (event) {
    var source = event.detail.elt;
    if (source && source.id === "price-chart" && document.visibilityState !== "visible") {
      event.preventDefault();
    }
  });

  // --- Toasts --------------------------------------------------------------------------------
  function armToasts(root) {
    var toasts = root.querySelectorAll ? root.querySelectorAll("[data-toast]") : [];
    Array.prototype.forEach.call(toasts, function (toast) {
      if (toast.dataset.armed) {
        return;
      }
      toast.dataset.armed = "1";
      window.setTimeout(function () {
        toast.remove();
      }, TOAST_MS);
    });
  }

  ["htmx:afterSettle", "htmx:oobAfterSwap"].forEach(function (name) {
    document.addEventListener(name, function () {
      armToasts(document);
    });
  });

  document.addEventListener("click", function (event) {
    var close = event.target.closest("[data-dismiss-toast]");
    if (close) {
      close.closest("[data-toast]").remove();
    }
  });
})();
