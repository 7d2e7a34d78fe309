// The credentials page: the expiry in the reader's local time with a countdown, and copy buttons.
// Served by the broker as a file (the page's policy allows no inline script).
"use strict";

(function () {
  function remaining(ms) {
    if (ms <= 0) { return "expired"; }
    var total = Math.floor(ms / 1000);
    var h = Math.floor(total / 3600), m = Math.floor((total % 3600) / 60), s = total % 60;
    return "expires in " + (h ? h + " h " : "") + m + " min " + s + " s";
  }

  function showExpiry() {
    var time = document.getElementById("creds-expires");
    var countdown = document.getElementById("creds-countdown");
    if (!time || !countdown) { return; }
    var expires = new Date(time.getAttribute("datetime"));
    if (isNaN(expires.getTime())) { return; }
    time.textContent = expires.toLocaleString(undefined, { dateStyle: "medium", timeStyle: "long" });
    time.title = time.getAttribute("datetime");
    function tick() {
      var left = expires.getTime() - Date.now();
      countdown.textContent = "(" + remaining(left) + ")";
      countdown.classList.toggle("creds-expired", left <= 0);
      if (left > 0) { window.setTimeout(tick, 1000); }
    }
    tick();
  }

  function copy(button) {
    var target = document.getElementById(button.getAttribute("data-copy"));
    var status = document.getElementById("creds-status");
    if (!target || !navigator.clipboard) { return; }
    navigator.clipboard.writeText(target.textContent).then(function () {
      button.textContent = "Copied";
      var label = document.getElementById(button.getAttribute("aria-describedby"));
      if (status && label) { status.textContent = "Copied " + label.textContent + " to the clipboard."; }
      window.setTimeout(function () { button.textContent = "Copy"; }, 2000);
    }, function () {
      if (status) { status.textContent = "Could not copy: select the text and copy it by hand."; }
    });
  }

  function init() {
    showExpiry();
    var buttons = document.querySelectorAll("button[data-copy]");
    for (var i = 0; i < buttons.length; i++) {
      if (navigator.clipboard) { buttons[i].hidden = false; }
      buttons[i].addEventListener("click", function (event) { copy(event.currentTarget); });
    }
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", init);
  } else {
    init();
  }
}());
