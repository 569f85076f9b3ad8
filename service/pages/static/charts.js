// Chart helpers of the job page's panels (job.js, diagnostics.js): uPlot charts over epochs,
// and min/max decimation so that a long history draws as fast as a short one.
window.BPCharts = (function () {
  "use strict";
  var BUCKETS = 1000;

  // Min/max decimation over shared x: each bucket gives its first and last epoch as x, and
  // each series its minimum and maximum in the order they occur.
  function decimate(xs, series) {
    var n = xs.length;
    if (n <= 2 * BUCKETS) return [xs].concat(series);
    var size = Math.ceil(n / BUCKETS), outX = [], outS = series.map(function () { return []; });
    for (var i = 0; i < n; i += size) {
      var j = Math.min(n, i + size);
      if (j - i === 1) {
        outX.push(xs[i]);
        series.forEach(function (s, k) { outS[k].push(s[i]); });
        continue;
      }
      outX.push(xs[i], xs[j - 1]);
      series.forEach(function (s, k) {
        var lo = -1, hi = -1;
        for (var t = i; t < j; t++) {
          var v = s[t];
          if (v === null || v === undefined) continue;
          if (lo < 0 || v < s[lo]) lo = t;
          if (hi < 0 || v > s[hi]) hi = t;
        }
        if (lo < 0) { outS[k].push(null, null); return; }
        if (lo <= hi) outS[k].push(s[lo], s[hi]); else outS[k].push(s[hi], s[lo]);
      });
    }
    return [outX].concat(outS);
  }

  // Values a log scale can show (others become gaps).
  function positive(arr) {
    return arr.map(function (v) { return v !== null && v > 0 ? v : null; });
  }

  // Labels of a log axis: tiny and huge values in exponent form (not rounded to 0).
  function ticks(u, splits) {
    return splits.map(function (v) {
      if (v === null || v === undefined) return "";
      return v !== 0 && (Math.abs(v) < 1e-3 || Math.abs(v) >= 1e5) ? v.toExponential(0) : String(v);
    });
  }

  // A chart of `series` over epochs in `el`: a fixed y range, or a log y axis when `log`.
  function make(el, series, yRange, log) {
    var opts = {
      width: Math.max(300, el.clientWidth), height: el.classList.contains("short") ? 160 : 260,
      scales: { x: { time: false }, y: yRange ? { range: yRange } : { distr: log ? 3 : 1 } },
      axes: [{ label: "epoch" }, log ? { values: ticks, size: 60 } : {}],
      series: [{ label: "epoch" }].concat(series),
      legend: { live: true },
    };
    return new uPlot(opts, [[]].concat(series.map(function () { return []; })), el);
  }

  function fit(plot) {
    var el = plot.root.parentNode;
    plot.setSize({ width: Math.max(300, el.clientWidth), height: plot.height });
  }

  return { decimate: decimate, positive: positive, make: make, fit: fit };
})();
