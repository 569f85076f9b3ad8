// A job's per-layer diagnostics on its page, fed by job.js from the event stream: the table of
// the latest recorded epoch, the weight-gradient norm of each layer over the recorded epochs
// (log scale, charts.js), and the run's findings (the job's warnings).
window.BPDiagnostics = (function () {
  "use strict";
  var root = document.getElementById("diagnostics");
  var C = window.BPCharts;
  var COLORS = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2",
                "#7f7f7f", "#bcbd22", "#17becf"];
  var epochs = [], norms = [], latest = null, plot = null, timer = null, shown = "";

  function $(id) { return document.getElementById(id); }
  function num(v) { return v === null || v === undefined ? "–" : Number(v).toPrecision(3); }
  function pct(v) { return v === null || v === undefined ? "–" : (100 * v).toFixed(1) + "%"; }
  var COLUMNS = [["layer", String], ["activation", String], ["grad_norm_W", num],
                 ["grad_norm_b", num], ["weight_norm", num], ["update_ratio", num],
                 ["activation_mean", num], ["activation_std", num], ["dead_fraction", pct],
                 ["saturated_fraction", pct]];

  function chart(layers) {
    if (plot) plot.destroy();
    plot = C.make($("chart-grad"), layers.map(function (r, i) {
      return { label: "layer " + r.layer + " (" + r.activation + ")",
               stroke: COLORS[i % COLORS.length], width: 2 };
    }), null, true);
  }

  function table(item) {
    var body = $("diag-rows");
    body.textContent = "";
    item.layers.forEach(function (r) {
      var tr = document.createElement("tr");
      COLUMNS.forEach(function (c, i) {
        var td = document.createElement("td");
        td.textContent = c[1](r[c[0]]);
        if (i > 1) td.className = "num";
        tr.appendChild(td);
      });
      body.appendChild(tr);
    });
    $("diag-epoch").textContent = "epoch " + item.epoch;
    root.dataset.epoch = String(item.epoch);
    root.dataset.epochs = String(epochs.length);
  }

  function draw() {
    timer = null;
    if (!latest) return;
    $("diag-panel").hidden = false;
    var hint = $("diag-waiting");
    if (hint) hint.remove();
    if (!plot) chart(latest.layers);
    plot.setData(C.decimate(epochs, norms.map(C.positive)));
    table(latest);
  }

  // One recorded epoch ({"epoch", "layers": [...]}, an item of GET /v1/jobs/{id}/diagnostics).
  function add(item) {
    if (!root) return;
    epochs.push(item.epoch);
    item.layers.forEach(function (r, i) {
      if (!norms[i]) norms[i] = epochs.slice(0, -1).map(function () { return null; });
      norms[i].push(r.grad_norm_W);
    });
    latest = item;
    if (timer === null) timer = setTimeout(function () { requestAnimationFrame(draw); }, 200);
  }

  // The run's findings: each {"name", "message", "layer", "epoch", ...}.
  function warnings(list) {
    var key = JSON.stringify(list || []);
    if (key === shown) return;
    shown = key;
    var ul = $("warnings-list");
    ul.textContent = "";
    (list || []).forEach(function (w) {
      var li = document.createElement("li");
      li.dataset.name = w.name;
      var name = document.createElement("strong");
      name.textContent = w.name.replace(/_/g, " ");
      li.appendChild(name);
      var where = [];
      if (w.layer !== null && w.layer !== undefined) where.push("layer " + w.layer);
      if (w.epoch !== null && w.epoch !== undefined) where.push("epoch " + w.epoch);
      li.appendChild(document.createTextNode(
        ": " + w.message + (where.length ? " (" + where.join(", ") + ")" : "")));
      ul.appendChild(li);
    });
    $("warnings").hidden = !(list && list.length);
  }

  function fit() { if (plot) C.fit(plot); }

  return { add: add, warnings: warnings, fit: fit };
})();
