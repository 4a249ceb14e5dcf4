// Coral dashboard: small enhancements over server-rendered pages (every page works without it).
// Sortable tables, pickers that apply on change, two-commit compare in the history, copy links.
(function () {
  "use strict";

  // Tables with class "sortable": click a heading to sort by it (cells may carry data-v).
  document.querySelectorAll("table.sortable").forEach(function (table) {
    var heads = table.querySelectorAll("thead th");
    heads.forEach(function (th, col) {
      th.addEventListener("click", function () {
        var asc = !th.classList.contains("asc");
        heads.forEach(function (h) { h.classList.remove("asc", "desc"); });
        th.classList.add(asc ? "asc" : "desc");
        var body = table.tBodies[0];
        var rows = Array.prototype.slice.call(body.rows);
        rows.sort(function (a, b) {
          var ca = a.cells[col], cb = b.cells[col];
          var x = ca ? (ca.getAttribute("data-v") || ca.textContent) : "";
          var y = cb ? (cb.getAttribute("data-v") || cb.textContent) : "";
          var nx = parseFloat(x), ny = parseFloat(y);
          var c = (!isNaN(nx) && !isNaN(ny)) ? nx - ny : String(x).localeCompare(String(y));
          return asc ? c : -c;
        });
        rows.forEach(function (r) { body.appendChild(r); });
      });
    });
  });

  // Forms with class "auto": submit when a control changes (the submit button stays for no-JS).
  document.querySelectorAll("form.auto").forEach(function (form) {
    form.addEventListener("change", function () { form.submit(); });
  });

  // History: tick two commits, then "compare" opens their diff (older -> newer).
  var compare = document.getElementById("compare");
  if (compare) {
    var boxes = document.querySelectorAll("input.pick");
    var update = function () {
      var picked = Array.prototype.filter.call(boxes, function (b) { return b.checked; });
      compare.disabled = picked.length !== 2;
      compare.setAttribute("data-picked", picked.map(function (b) { return b.value; }).join(","));
    };
    boxes.forEach(function (b) { b.addEventListener("change", update); });
    compare.addEventListener("click", function () {
      var picked = (compare.getAttribute("data-picked") || "").split(",");
      if (picked.length === 2) {  // rows are newest first: the second is the older
        window.location = "/diff?from=" + encodeURIComponent(picked[1]) +
          "&to=" + encodeURIComponent(picked[0]);
      }
    });
    update();
  }

  // Copy buttons: copy the value of the input they name.
  document.querySelectorAll("button[data-copy]").forEach(function (button) {
    button.addEventListener("click", function () {
      var input = document.getElementById(button.getAttribute("data-copy"));
      if (!input) { return; }
      input.select();
      if (navigator.clipboard && window.isSecureContext) {
        navigator.clipboard.writeText(input.value).catch(function () {});
      } else {
        try { document.execCommand("copy"); } catch (e) { /* selected: copy by hand */ }
      }
      button.textContent = "copied";
    });
  });
})();
