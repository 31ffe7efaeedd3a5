"use strict";
// provaudit report: sort, filter and expand the evidence tables. Builds no markup from data:
// every text on the page was escaped when the report was written; this only moves rows.
(function () {
  function value(row, col) {
    var cell = row.cells[col];
    var v = cell.getAttribute("data-v");
    if (v === null) { v = cell.textContent; }
    var n = Number(v);
    return v !== "" && !isNaN(n) ? n : v.toLowerCase();
  }
  function pairs(tbody) {
    var out = [];
    var rows = tbody.querySelectorAll("tr.pair");
    for (var i = 0; i < rows.length; i++) {
      out.push({ row: rows[i], detail: rows[i].nextElementSibling });
    }
    return out;
  }
  function setup(table) {
    var tbody = table.tBodies[0];
    var heads = table.querySelectorAll("th[data-col]");
    heads.forEach(function (th) {
      th.addEventListener("click", function () {
        var col = Number(th.getAttribute("data-col"));
        var desc = th.getAttribute("aria-sort") !== "descending";
        heads.forEach(function (h) { h.removeAttribute("aria-sort"); });
        th.setAttribute("aria-sort", desc ? "descending" : "ascending");
        var list = pairs(tbody);
        list.sort(function (a, b) {
          var x = value(a.row, col), y = value(b.row, col);
          var c = x < y ? -1 : x > y ? 1 : 0;
          return desc ? -c : c;
        });
        list.forEach(function (p) { tbody.appendChild(p.row); tbody.appendChild(p.detail); });
      });
    });
    tbody.addEventListener("click", function (ev) {
      var button = ev.target.closest("button.toggle");
      if (!button) { return; }
      var detail = button.closest("tr").nextElementSibling;
      var open = detail.hidden;
      detail.hidden = !open;
      button.setAttribute("aria-expanded", open ? "true" : "false");
      button.textContent = open ? "\u25BE" : "\u25B8";
    });
    var filter = document.getElementById(table.getAttribute("data-filter"));
    var count = document.getElementById(table.getAttribute("data-count"));
    filter.addEventListener("input", function () {
      var q = filter.value.toLowerCase();
      var shown = 0;
      pairs(tbody).forEach(function (p) {
        var hit = q === "" || p.row.textContent.toLowerCase().indexOf(q) >= 0 ||
          p.detail.textContent.toLowerCase().indexOf(q) >= 0;
        p.row.hidden = !hit;
        if (!hit && !p.detail.hidden) { p.row.querySelector("button.toggle").click(); }
        shown += hit ? 1 : 0;
      });
      count.textContent = String(shown);
    });
  }
  document.querySelectorAll("table.evidence").forEach(setup);
  // report.html#pair-0-3 opens the third pair of the first audit (a link to one piece of evidence)
  if (/^#pair-[0-9]+-[0-9]+$/.test(location.hash)) {
    var linked = document.getElementById(location.hash.slice(1));
    if (linked) { linked.querySelector("button.toggle").click(); }
  }
})();
