// sts-broker: a page the browser restores from its back/forward cache (event.persisted) is a snapshot of a
// session that may have ended since (after "Sign out", Back would show live-looking buttons that fail):
// load it again from the broker instead, which shows the sign-in page when the session is gone. A file of
// its own so the Content-Security-Policy allows no inline script.
(function () {
  "use strict";
  window.addEventListener("pageshow", function (event) {
    if (event.persisted) {
      window.location.reload();
    }
  });
})();
