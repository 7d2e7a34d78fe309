// The role picker: filters as you type (the same matching as the server's ?q=: every word must appear in
// the account name or id, role name or alias), keyboard moves between roles, and with one role the console
// opens at once. Without JavaScript the page works as plain forms.
"use strict";
(function () {
  var auto = document.querySelector("form[data-auto-open]");
  if (auto) {
    // Back from the console lands on the list, not on this page (which would open the console again).
    window.addEventListener("pageshow", function (event) {
      if (event.persisted) { return; }
      history.replaceState(null, "", "/roles?list=1");
      // After the load has completed: a navigation during it would replace this history entry.
      setTimeout(function () { auto.submit(); }, 0);
    });
    return;
  }
  var input = document.getElementById("picker-q");
  if (!input) { return; }
  var rows = Array.prototype.slice.call(document.querySelectorAll(".picker-role"));
  // Read once: filtering then touches only the rows and groups whose visibility changes.
  var texts = rows.map(function (row) { return row.getAttribute("data-search") || ""; });
  var arns = rows.map(function (row) { return row.querySelector("input[name=role]").value; });
  var groups = Array.prototype.slice.call(document.querySelectorAll(".picker-group"));
  var groupOf = rows.map(function (row) { return groups.indexOf(row.closest(".picker-group")); });
  var count = document.getElementById("picker-count");
  var total = count ? count.getAttribute("data-total") : "";
  var none = document.querySelector(".picker-none");

  function visible() { return rows.filter(function (row) { return !row.hidden; }); }

  function apply() {
    var terms = input.value.toLowerCase().split(/\s+/).filter(Boolean);
    var shown = 0, seen = {}, inGroup = groups.map(function () { return 0; });
    for (var i = 0; i < rows.length; i++) {
      var ok = true;
      for (var t = 0; t < terms.length && ok; t++) { ok = texts[i].indexOf(terms[t]) !== -1; }
      if (rows[i].hidden === ok) { rows[i].hidden = !ok; }
      if (!ok) { continue; }
      inGroup[groupOf[i]]++;
      // A favourite also appears under its account: count each role once.
      if (!seen[arns[i]]) { seen[arns[i]] = 1; shown++; }
    }
    groups.forEach(function (group, g) { if (group.hidden !== !inGroup[g]) { group.hidden = !inGroup[g]; } });
    if (count) { count.textContent = terms.length ? shown + " of " + total + " roles match." : total + " roles."; }
    if (none) { none.hidden = true; }
  }

  var pending = 0;
  input.addEventListener("input", function () {
    if (pending) { cancelAnimationFrame(pending); }
    pending = requestAnimationFrame(function () { pending = 0; apply(); });
  });

  function openButtons() { return visible().map(function (row) { return row.querySelector("button.open"); }); }

  input.addEventListener("keydown", function (event) {
    if (event.key === "Enter" && input.value.trim()) {
      apply();
      var first = openButtons()[0];
      if (first) { event.preventDefault(); first.click(); }
    } else if (event.key === "ArrowDown") {
      var top = openButtons()[0];
      if (top) { event.preventDefault(); top.focus(); }
    }
  });

  document.addEventListener("keydown", function (event) {
    var target = event.target;
    if (!(target instanceof HTMLElement) || !target.classList.contains("open")) { return; }
    if (event.key !== "ArrowDown" && event.key !== "ArrowUp") { return; }
    var buttons = openButtons(), at = buttons.indexOf(target);
    var next = event.key === "ArrowDown" ? buttons[at + 1] : (at > 0 ? buttons[at - 1] : input);
    if (next) { event.preventDefault(); next.focus(); }
  });
  if (input.value) { apply(); }
})();
