/* The Notifications page (admins): add a target, send a test, remove a target.
 * The lists are rendered by the server; a change reloads the page to show the new list. */
import { startPage } from "../app.js";
import { $, $$, setText } from "../lib/dom.js";
import { actionError, api, postJson } from "../lib/api.js";

function say(node, text, failed) {
  setText(node, text);
  node.classList.toggle("err", Boolean(failed));
}

function setupForm() {
  var form = $("#target-form");
  if (!form) return;
  var msg = $("#nt-msg");
  form.addEventListener("submit", function (event) {
    event.preventDefault();
    var name = $("#nt-name").value.trim();
    var url = $("#nt-url").value.trim();
    if (!name || !url) { say(msg, "A name and an apprise URL are needed.", true); return; }
    var events = $$('input[name="events"]', form).filter(function (box) { return box.checked; })
      .map(function (box) { return box.value; });
    var everything = events.length === $$('input[name="events"]', form).length;
    $("#nt-add").disabled = true;
    say(msg, "Adding…");
    postJson("/api/notifications/targets", { name: name, url: url, events: everything ? [] : events })
      .then(function () { window.location.reload(); })
      .catch(function (error) {
        $("#nt-add").disabled = false;
        say(msg, actionError(error, "Not added"), true);
      });
  });
}

function setupRows() {
  $$("#targets tbody tr[data-id]").forEach(function (row) {
    var id = encodeURIComponent(row.dataset.id);
    var result = row.querySelector('[data-f="result"]');
    var test = row.querySelector('[data-action="test"]');
    if (test) {
      test.addEventListener("click", function () {
        test.disabled = true;
        say(result, "Sending…");
        postJson("/api/notifications/targets/" + id + "/test")
          .then(function (answer) {
            if (answer.ok) say(result, "Sent");
            else say(result, "Failed: " + (answer.error || "not delivered"), true);
          })
          .catch(function (error) { say(result, actionError(error, "Not sent"), true); })
          .finally(function () { test.disabled = false; });
      });
    }
    var remove = row.querySelector('[data-action="remove"]');
    if (remove) {
      remove.addEventListener("click", function () {
        remove.disabled = true;
        api("/api/notifications/targets/" + id, { method: "DELETE" })
          .then(function () { window.location.reload(); })
          .catch(function (error) {
            remove.disabled = false;
            say(result, actionError(error, "Not removed"), true);
          });
      });
    }
  });
}

startPage(function () {
  setupForm();
  setupRows();
});
