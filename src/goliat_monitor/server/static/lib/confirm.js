/* A button that asks before it acts: "Delete" becomes "Delete …? [Yes] [No]" in place. */
import { $, h } from "./dom.js";

export function confirmable(label, question, yesLabel, run, className) {
  var wrap = h("span", { class: "confirmable" });
  var ask = h("button", { type: "button", class: className || "secondary small", "data-step": "ask", text: label });
  var yes = h("button", { type: "button", class: "danger small", "data-step": "yes", text: yesLabel });
  var no = h("button", { type: "button", class: "link", "data-step": "no", text: "No" });
  wrap.append(ask, h("span", { class: "confirm", "data-step": "confirm", hidden: true }, [question + " ", yes, " ", no]));
  wireConfirm(wrap, run);
  return wrap;
}

export function wireConfirm(wrap, run) {
  var ask = $('[data-step="ask"]', wrap);
  var box = $('[data-step="confirm"]', wrap);
  var yes = $('[data-step="yes"]', wrap);
  function show(confirming) { ask.hidden = confirming; box.hidden = !confirming; }
  ask.addEventListener("click", function () { show(true); yes.focus(); });
  $('[data-step="no"]', wrap).addEventListener("click", function () { show(false); ask.focus(); });
  yes.addEventListener("click", function () {
    yes.disabled = true;
    Promise.resolve(run()).then(function () { yes.disabled = false; show(false); }, function () { yes.disabled = false; show(false); });
  });
}
