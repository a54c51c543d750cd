/*
 * API tokens page: a Copy button beside a token shown once. Without this file the token
 * is still there to select and copy by hand; the button stays hidden.
 */
(function () {
  "use strict";

  document.querySelectorAll("[data-copy-target]").forEach(function (button) {
    var input = document.getElementById(button.getAttribute("data-copy-target"));
    if (!input || !navigator.clipboard) {
      return;
    }
    button.hidden = false;
    button.addEventListener("click", function () {
      navigator.clipboard.writeText(input.value).then(function () {
        button.textContent = "Copied";
      });
    });
  });

  var secret = document.getElementById("new-token-secret");
  if (secret) {
    secret.addEventListener("focus", function () {
      secret.select();
    });
  }
})();
