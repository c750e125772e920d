/* The form that splits a GOLIAT config into a super study: preview the split, then create it. */
import { ADMIN_NEEDED, ROLE_REFUSED, base, postJson } from "./api.js";
import { $, $$, h, setText } from "./dom.js";

function readJsonFile(file) {
  return file.text().then(function (text) {
    try {
      var value = JSON.parse(text);
      if (!value || typeof value !== "object" || Array.isArray(value)) throw new Error("it is not a JSON object");
      return value;
    } catch (e) {
      throw new Error(file.name + " is not valid JSON (" + e.message + ")");
    }
  });
}

export function createStudyForm() {
  var form = $("#create-form");
  if (!form) return;
  var msg = $("#cs-msg");
  var out = $("#cs-preview-out");
  var createButton = $("#cs-create");
  var previewButton = $("#cs-preview");
  var replaceWrap = $("#cs-replace-wrap");
  var strategy = $("#cs-strategy");
  var preview = null;

  function say(text, isError) {
    setText(msg, text);
    msg.classList.toggle("err", !!isError);
  }

  function showStrategyFields() {
    $$("[data-for-strategy]", form).forEach(function (n) { n.hidden = n.dataset.forStrategy !== strategy.value; });
  }

  function invalidate() {
    if (!preview) return;
    preview = null;
    createButton.disabled = true;
    out.hidden = true;
    say("The inputs changed: preview again before creating.");
  }

  function render(result) {
    setText($("#cs-plan"), result.plan);
    setText($("#cs-total"), result.totalSimulations + " simulation" + (result.totalSimulations === 1 ? "" : "s") + " in " + result.assignments.length + " assignment" + (result.assignments.length === 1 ? "" : "s"));
    var warnings = $("#cs-warnings");
    warnings.textContent = "";
    (result.warnings || []).forEach(function (w) { warnings.append(h("li", { class: "warn", text: w })); });
    var tbody = $("#cs-assignments tbody");
    tbody.textContent = "";
    result.assignments.forEach(function (a) {
      tbody.append(h("tr", null, [
        h("td", { class: "num", text: a.index }),
        h("td", { class: "wrap", text: a.summary }),
        h("td", { class: "num", "data-f": "size", text: a.size })
      ]));
    });
    out.hidden = false;
  }

  function readInputs() {
    var configFile = $("#cs-config").files[0];
    if (!configFile) return Promise.reject(new Error("Choose a GOLIAT config file first."));
    var parentFiles = Array.prototype.slice.call($("#cs-parents").files);
    return Promise.all([readJsonFile(configFile)].concat(parentFiles.map(readJsonFile))).then(function (values) {
      var parents = {};
      parentFiles.forEach(function (f, i) { parents[f.name] = values[i + 1]; });
      return { config: values[0], parents: parents };
    });
  }

  form.addEventListener("submit", function (event) {
    event.preventDefault();
    preview = null;
    createButton.disabled = true;
    out.hidden = true;
    replaceWrap.hidden = true;
    $("#cs-replace").checked = false;
    previewButton.disabled = true;
    say("Splitting…");
    readInputs().then(function (inputs) {
      var body = { config: inputs.config, parentConfigs: inputs.parents, strategy: strategy.value };
      if (strategy.value === "auto" && $("#cs-splits").value) body.numSplits = Number($("#cs-splits").value);
      if (strategy.value === "custom") body.frequencyGroups = $("#cs-groups").value;
      return postJson("/api/super-studies/split", body).then(function (result) {
        preview = { result: result, config: inputs.config, parents: inputs.parents };
        render(result);
        createButton.disabled = false;
        say("Preview ready: check it, then create the study.");
      });
    }).catch(function (error) {
      say("Cannot split this config: " + error.message, true);
    }).then(function () { previewButton.disabled = false; });
  });

  createButton.addEventListener("click", function () {
    if (!preview) return;
    var name = $("#cs-name").value.trim();
    if (!name) {
      say("Give the study a name.", true);
      $("#cs-name").focus();
      return;
    }
    var body = {
      name: name,
      description: $("#cs-description").value.trim() || null,
      baseConfig: preview.config,
      parentConfigs: preview.parents,
      splitStrategy: preview.result.strategy,
      maxAttempts: Number($("#cs-attempts").value) || 3,
      retryFatal: $("#cs-retry-fatal").checked,
      replace: $("#cs-replace").checked,
      assignments: preview.result.assignments
    };
    createButton.disabled = true;
    say("Creating…");
    postJson("/api/super-studies", body).then(function (study) {
      say("Created.");
      window.location.href = base + "/super-studies/" + encodeURIComponent(study.id);
    }).catch(function (error) {
      createButton.disabled = false;
      if (error.status === 409) {
        replaceWrap.hidden = false;
        say("A study named \u201c" + name + "\u201d already exists. Tick \u201creplace\u201d and create again to replace it, or choose another name.", true);
      } else {
        say(error.status === 403 ? ROLE_REFUSED : error.status === 401 ? ADMIN_NEEDED : "Could not create the study: " + error.message, true);
      }
    });
  });

  strategy.addEventListener("change", function () { showStrategyFields(); invalidate(); });
  ["#cs-config", "#cs-parents", "#cs-splits", "#cs-groups"].forEach(function (sel) {
    $(sel).addEventListener("change", invalidate);
  });
  $("#cs-name").addEventListener("input", function () { replaceWrap.hidden = true; $("#cs-replace").checked = false; });
  showStrategyFields();
}
