/* The sign-in page: signs in through POST /api/session and shows a refusal without a reload.
 * Without JavaScript the same form posts to /login and the server redirects. */
import { startPage } from "../app.js";
import { base } from "../lib/api.js";
import { $, setText } from "../lib/dom.js";

function init(data) {
  var form = $("#login-form");
  var msg = $("#login-msg");
  var button = $("#login-submit");
  form.addEventListener("submit", function (event) {
    event.preventDefault();
    button.disabled = true;
    msg.classList.remove("err");
    setText(msg, "Signing in…");
    fetch(base + "/api/session", {
      method: "POST",
      credentials: "same-origin",
      headers: { "Content-Type": "application/json", Accept: "application/json" },
      body: JSON.stringify({ username: $("#login-username").value, password: $("#login-password").value })
    }).then(function (response) {
      if (response.ok) {
        window.location.assign(base + (data.next || "/"));
        return;
      }
      return response.json().catch(function () { return {}; }).then(function (body) {
        var text = body.error || response.status + " " + response.statusText;
        if (response.status === 429) {
          var wait = response.headers.get("Retry-After");
          if (wait) text += " (in " + wait + " s)";
        }
        msg.classList.add("err");
        setText(msg, text);
        button.disabled = false;
        $("#login-password").select();
      });
    }).catch(function (error) {
      msg.classList.add("err");
      setText(msg, "Could not reach the server: " + error.message);
      button.disabled = false;
    });
  });
}

startPage(init);
