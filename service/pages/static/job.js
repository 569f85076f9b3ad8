// A job's page: live curves from the job's event stream (EventSource, the session cookie).
// Every epoch is kept; drawing uses at most ~2 points per pixel bucket (min and max of each
// bucket, in time order, charts.js), so a 100,000-epoch history draws as fast as a short one.
// The stream's diagnostics events and the job's warnings go to diagnostics.js.
(function () {
  "use strict";
  var root = document.getElementById("job");
  if (!root) return;
  var FINISHED = ["succeeded", "failed", "cancelled"];
  var C = window.BPCharts, D = window.BPDiagnostics;
  var initial = root.dataset.status;
  var d = { epoch: [], loss: [], val_loss: [], accuracy: [], val_accuracy: [], lr: [] };
  var hasVal = false, hasAcc = false, log = false, dirty = false, timer = null, plots = {};
  var last = null;

  function $(id) { return document.getElementById(id); }
  function fmt(v, digits) { return v === null || v === undefined ? "–" : Number(v).toPrecision(digits || 4); }
  function pct(v) { return v === null || v === undefined ? "–" : (100 * v).toFixed(1) + "%"; }
  function dur(s) {
    if (s === null || s === undefined) return "";
    s = Math.round(s);
    if (s < 60) return "ETA " + s + " s";
    if (s < 3600) return "ETA " + Math.floor(s / 60) + " min " + String(s % 60).padStart(2, "0") + " s";
    return "ETA " + Math.floor(s / 3600) + " h " + String(Math.floor(s % 3600 / 60)).padStart(2, "0") + " min";
  }

  function positive(arr) { return log ? C.positive(arr) : arr; }

  function make(el, series, yRange, logOk) { return C.make(el, series, yRange, log && logOk); }

  function build() {
    Object.keys(plots).forEach(function (k) { plots[k].destroy(); });
    plots = {
      loss: make($("chart-loss"), [
        { label: "training loss", stroke: "#1f77b4", width: 2 },
        { label: "validation loss", stroke: "#ff7f0e", width: 2, dash: [6, 4] }], null, true),
      acc: make($("chart-acc"), [
        { label: "training accuracy", stroke: "#2ca02c", width: 2 },
        { label: "validation accuracy", stroke: "#d62728", width: 2, dash: [6, 4] }], [0, 1], false),
      lr: make($("chart-lr"), [{ label: "learning rate", stroke: "#9467bd", width: 2 }], null, true),
    };
    draw();
  }

  function draw() {
    dirty = false; timer = null;
    var loss = C.decimate(d.epoch, [positive(d.loss), positive(d.val_loss)]);
    plots.loss.setData(loss);
    plots.acc.setData(C.decimate(d.epoch, [d.accuracy, d.val_accuracy]));
    plots.lr.setData(C.decimate(d.epoch, [positive(d.lr)]));
    $("acc-block").hidden = !hasAcc;
    var points = $("points");
    points.dataset.points = String(d.epoch.length);
    points.dataset.drawn = String(loss[0].length);
    points.textContent = d.epoch.length + " epochs" +
      (loss[0].length < d.epoch.length ? " (drawn as " + loss[0].length + " points)" : "");
    if (last) {
      $("m-loss").textContent = fmt(last.loss);
      $("m-val_loss").textContent = fmt(last.val_loss);
      $("m-accuracy").textContent = pct(last.accuracy);
      $("m-val_accuracy").textContent = pct(last.val_accuracy);
      $("lr").textContent = fmt(last.learning_rate);
      var p = last.progress;
      $("progress").value = Math.round(100 * p.fraction);
      $("epochs").textContent = p.epoch + " / " + p.epochs;
      $("eta").textContent = dur(p.eta_seconds);
    }
  }

  function later() {
    dirty = true;
    if (timer === null) timer = setTimeout(function () { requestAnimationFrame(draw); }, 200);
  }

  function setStatus(job) {
    D.warnings(job.warnings);
    var el = $("status");
    el.textContent = job.status;
    el.className = "status " + job.status;
    root.dataset.status = job.status;
    if (FINISHED.indexOf(job.status) >= 0) {
      var cancel = $("cancel");
      if (cancel) cancel.remove();
      $("eta").textContent = "";
      if (job.status === "succeeded") $("progress").value = 100;
      if (job.model_id && $("model-link").tagName !== "A") {
        var a = document.createElement("a");
        a.id = "model-link"; a.href = "/models/" + job.model_id; a.textContent = job.model_id;
        $("model-link").replaceWith(a);
      }
    }
  }

  function start() {
    build();
    window.addEventListener("resize", function () {
      Object.keys(plots).forEach(function (k) { C.fit(plots[k]); });
      D.fit();
    });
    $("logscale").addEventListener("change", function (e) { log = e.target.checked; build(); });
    var es = new EventSource(root.dataset.eventsUrl);
    es.addEventListener("epoch", function (e) {
      var r = JSON.parse(e.data);
      d.epoch.push(r.epoch); d.loss.push(r.loss); d.val_loss.push(r.val_loss);
      d.accuracy.push(r.accuracy); d.val_accuracy.push(r.val_accuracy); d.lr.push(r.learning_rate);
      if (r.accuracy !== null) hasAcc = true;
      if (r.val_loss !== null) hasVal = true;
      last = r;
      later();
    });
    es.addEventListener("diagnostics", function (e) { D.add(JSON.parse(e.data)); });
    es.addEventListener("status", function (e) { setStatus(JSON.parse(e.data)); });
    es.addEventListener("end", function (e) {
      es.close();
      var job = JSON.parse(e.data);
      setStatus(job);
      draw();
      $("stream-note").textContent = "Finished: the curves show the whole history.";
      if (job.status === "failed" && FINISHED.indexOf(initial) < 0) location.reload();
    });
    es.onerror = function () {
      if (es.readyState !== EventSource.CLOSED) {
        $("stream-note").textContent = "Reconnecting to the live stream…";
        return;
      }
      // Closed without an end (e.g. the job ended while we reconnected, which answers 204):
      // reload to show the finished job from its history (a 429 also retries this way).
      $("stream-note").textContent = "The live stream closed.";
      if (FINISHED.indexOf(root.dataset.status) < 0) setTimeout(function () { location.reload(); }, 3000);
    };
    es.onopen = function () { $("stream-note").textContent = ""; };
  }

  if (window.uPlot) start(); else window.addEventListener("load", start);
})();
