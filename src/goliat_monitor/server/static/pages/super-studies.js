/* The super studies page: every campaign with its master progress, live; the create form. */
import { startPage } from "../app.js";
import { fillStudy } from "../lib/cards.js";
import { createStudyForm } from "../lib/create-study.js";
import { $, $$, setText, timeEl } from "../lib/dom.js";
import { connectLive, reloadPage } from "../lib/live.js";

function init() {
  createStudyForm();
  var body = $("#studies-table tbody");
  var rows = new Map();
  $$("tr[data-id]", body).forEach(function (row) { rows.set(row.dataset.id, row); });
  connectLive({
    study: function (s) {
      var row = rows.get(s.id);
      if (s.deleted) {
        if (row) { row.remove(); rows.delete(s.id); }
      } else {
        if (!row) {
          row = $("#study-row-template").content.querySelector("tr").cloneNode(true);
          row.dataset.id = s.id;
          var created = row.lastElementChild;
          created.textContent = "";
          created.append(timeEl(s.createdAt));
          rows.set(s.id, row);
          body.prepend(row);
        }
        fillStudy(row, s);
      }
      setText($("#study-count"), rows.size);
      $("#studies-empty").hidden = rows.size > 0;
    },
    resync: reloadPage
  });
}

startPage(init);
