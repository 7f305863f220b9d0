/* modelmgr: the model page's drift histograms (reference vs current share per bin).
   Each .drift-plot[data-drift] holds {"labels": [...], "reference": [...], "current": [...]};
   drawn with uPlot as bars over the bin index, labelled with the bins' ranges. */
(function () {
  "use strict";

  function draw(el) {
    if (!window.uPlot || el.dataset.drawn === el.dataset.drift) return;
    var spec;
    try { spec = JSON.parse(el.dataset.drift); } catch (e) { return; }
    el.dataset.drawn = el.dataset.drift;
    if (el._uplot) { el._uplot.destroy(); el._uplot = null; }
    el.innerHTML = "";
    var x = spec.reference.map(function (_, i) { return i; });
    var bars = window.uPlot.paths && window.uPlot.paths.bars;
    function series(label, color, offset) {
      return { label: label, stroke: color, fill: color + "55", width: 1,
               paths: bars ? bars({ size: [0.42, 40], align: offset }) : undefined,
               points: { show: !bars },
               value: function (u, v) { return v == null ? "–" : (v * 100).toFixed(1) + " %"; } };
    }
    var opts = {
      width: Math.max(el.clientWidth, 280), height: 200,
      series: [{ label: "bin", value: function (u, i) { return spec.labels[i] || ""; } },
               series("reference", "#2f6fed", -1), series("current", "#d1242f", 1)],
      scales: { x: { time: false, range: function () { return [-0.6, x.length - 0.4]; } },
                y: { range: function (u, min, max) { return [0, Math.max(max * 1.15, 0.05)]; } } },
      axes: [{ space: 45, incrs: [1, 2, 4, 5, 8, 10, 20], values: function (u, ticks) {
                 var names = spec.ticks || spec.labels;
                 return ticks.map(function (t) { return Number.isInteger(t) ? (names[t] || "") : ""; }); } },
             { size: 50, values: function (u, ticks) { return ticks.map(function (t) { return (t * 100).toFixed(0) + "%"; }); } }],
      legend: { live: true }
    };
    el._uplot = new window.uPlot(opts, [x, spec.reference, spec.current], el);
  }

  function drawAll() { document.querySelectorAll(".drift-plot[data-drift]").forEach(draw); }
  document.addEventListener("DOMContentLoaded", drawAll);
  document.addEventListener("htmx:afterSettle", drawAll);
  window.addEventListener("load", drawAll);
})();
