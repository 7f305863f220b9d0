/* modelmgr: the little JavaScript the pages need beyond htmx: the live indicator,
   toasts, the upload progress bar and uPlot charts. */
(function () {
  "use strict";

  function formatBytes(n) {
    if (!isFinite(n)) return "?";
    var units = ["B", "KB", "MB", "GB", "TB"], i = 0;
    while (n >= 1024 && i < units.length - 1) { n /= 1024; i++; }
    return (i ? n.toFixed(1) : n) + " " + units[i];
  }

  /* live indicator: the ws extension fires these on the element with ws-connect */
  function setLive(on) {
    var dot = document.getElementById("live-dot"), label = document.getElementById("live-label");
    if (dot) dot.classList.toggle("on", on);
    if (label) label.textContent = on ? "live" : "offline";
    document.body.dataset.live = on ? "1" : "0";
  }
  /* After a reconnect (a server restart, a network drop) the page may have missed
     pushes: elements with data-reconnect-get="<url>" are fetched afresh. */
  var socketOpened = false;
  document.addEventListener("htmx:wsOpen", function () {
    setLive(true);
    if (socketOpened && window.htmx) {
      document.querySelectorAll("[data-reconnect-get]").forEach(function (el) {
        window.htmx.ajax("GET", el.dataset.reconnectGet, { target: el, swap: "outerHTML" });
      });
    }
    socketOpened = true;
  });
  document.addEventListener("htmx:wsClose", function () { setLive(false); });
  document.addEventListener("htmx:wsError", function () { setLive(false); });

  /* toasts fade out by CSS; remove them once they have */
  document.addEventListener("animationend", function (evt) {
    if (evt.target.classList && evt.target.classList.contains("toast")) evt.target.remove();
  });

  /* settings: choices selected but not yet applied survive a re-render of the slot
     cards (a live push, a refresh, a reconnect), with the version the card showed when
     the choice was made: applying it still expects that version, so a slot someone
     switched meanwhile is refused by the server rather than silently overwritten. */
  var pending = {};
  document.addEventListener("change", function (evt) {
    var select = evt.target;
    if (!select.matches || !select.matches("#slots select[name^='slot-']")) return;
    var slot = select.name.slice("slot-".length);
    var seen = document.getElementById("seen-" + slot);
    var keep = select.options.length ? select.options[0].value : "";
    if (select.value === keep) {  /* "keep" what the card shows now: nothing pending */
      delete pending[slot];
      if (seen) seen.value = seen.dataset.shown;
      var card = document.getElementById("slot-" + slot);
      if (card) card.classList.remove("pending");
      return;
    }
    pending[slot] = { value: select.value,
                      seen: pending[slot] ? pending[slot].seen : (seen ? seen.value : "") };
  });
  function restorePending() {
    Object.keys(pending).forEach(function (slot) {
      var select = document.getElementById("select-" + slot);
      var seen = document.getElementById("seen-" + slot);
      if (!select) { delete pending[slot]; return; }
      var choice = pending[slot];
      if (!Array.prototype.some.call(select.options, function (o) { return o.value === choice.value; })) {
        delete pending[slot];
        return;
      }
      select.value = choice.value;
      if (seen) seen.value = choice.seen;
      var card = document.getElementById("slot-" + slot);
      if (card) card.classList.add("pending");
    });
  }
  document.addEventListener("htmx:afterSettle", restorePending);
  document.addEventListener("htmx:wsAfterMessage", restorePending);
  document.addEventListener("htmx:oobAfterSwap", restorePending);
  /* applying sends every pending choice: from then on the server's answer rules */
  document.addEventListener("htmx:beforeRequest", function (evt) {
    if (evt.detail && evt.detail.elt && evt.detail.elt.id === "switch-form") pending = {};
  });

  /* a run's box is created once: the answer to Apply and the live push may both bring
     it, and the second must not wipe the log lines the first has gathered */
  document.addEventListener("htmx:oobBeforeSwap", function (evt) {
    var fragment = evt.detail && evt.detail.fragment;
    var incoming = fragment && (fragment.firstElementChild || fragment);
    if (incoming && incoming.hasAttribute && incoming.hasAttribute("data-create-only") &&
        evt.detail.target && evt.detail.target.id === incoming.id) {
      evt.detail.shouldSwap = false;
    }
  });

  /* The socket pushes every page the same fragments (a slot card, a worker panel, an
     audit row), each swapped out of band by id. A page shows only some of them, and htmx
     reports each fragment without a target as an error (htmx:oobErrorNoTarget) in the
     console. This extension, on the element with ws-connect, sorts a message before htmx
     swaps it: fragments whose target is on the page go through; a row for something the
     page lists but does not show yet (a new import, a new audit event: data-prepend-to)
     goes to the top of that list; the rest is dropped quietly. */
  function oobSelector(el) {
    var oob = el.getAttribute("hx-swap-oob") || el.getAttribute("data-hx-swap-oob") || "true";
    var colon = oob.indexOf(":");
    if (colon > 0) return oob.substring(colon + 1);
    return el.id ? "#" + CSS.escape(el.id) : null;
  }
  function prependRow(el) {
    var where = el.dataset && el.dataset.prependTo;
    var container = where && document.querySelector(where);
    if (!container) return;
    el.removeAttribute("hx-swap-oob");
    container.querySelectorAll("[data-empty]").forEach(function (e) { e.remove(); });
    container.prepend(el);
    if (window.htmx) window.htmx.process(el);
  }
  function defineLiveExtension() {
    window.htmx.defineExtension("modelmgr-live", {
      transformResponse: function (text, xhr) {
        var template = document.createElement("template");
        template.innerHTML = text;
        Array.from(template.content.children).forEach(function (el) {
          /* an ordinary response's own content is the page's business; of its out-of-band
             parts only a new row (a switch run's box, data-prepend-to) may need a home */
          if (xhr && !(el.hasAttribute("hx-swap-oob") && el.dataset.prependTo)) return;
          var selector = oobSelector(el);
          var present = false;
          try { present = !!(selector && document.querySelector(selector)); } catch (e) { present = false; }
          if (present) return;
          el.remove();
          prependRow(el);
        });
        return template.innerHTML;
      }
    });
  }
  if (window.htmx) defineLiveExtension();
  else document.addEventListener("DOMContentLoaded", defineLiveExtension);

  /* upload progress: htmx fires htmx:xhr:progress on the requesting form */
  function uploadBar(percent, text) {
    var bar = document.getElementById("upload-bar");
    if (!bar) return;
    bar.querySelector("span").style.width = percent + "%";
    bar.setAttribute("aria-valuenow", String(percent));
    document.getElementById("upload-percent").textContent = percent + "%";
    if (text) document.getElementById("upload-bytes").textContent = text;
  }
  document.addEventListener("htmx:xhr:progress", function (evt) {
    if (!evt.target || evt.target.id !== "upload-form") return;
    var d = evt.detail;
    if (!d.lengthComputable && !d.total) return;
    var percent = Math.floor((d.loaded / d.total) * 100);
    uploadBar(percent, formatBytes(d.loaded) + " of " + formatBytes(d.total) +
      (percent >= 100 ? " sent, inspecting…" : ""));
  });
  document.addEventListener("htmx:beforeRequest", function (evt) {
    if (evt.target && evt.target.id === "upload-form") {
      var bar = document.getElementById("upload-bar");
      if (bar) bar.className = "bar";
      uploadBar(0, "starting…");
    }
  });
  document.addEventListener("htmx:afterRequest", function (evt) {
    if (!evt.target || evt.target.id !== "upload-form") return;
    var bar = document.getElementById("upload-bar");
    var ok = evt.detail.successful && !document.querySelector("#upload-result .msg.err");
    if (bar) bar.className = "bar " + (ok ? "ok" : "err");
    document.getElementById("upload-bytes").textContent = ok ? "uploaded and inspected" : "refused";
  });

  /* charts: <div class="plot" data-plot='{"x": [...unix s], "series": [{"label", "values"}], "unit"}'> */
  var COLORS = ["#2f6fed", "#d4a72c", "#1a7f37", "#cf222e", "#8250df"];

  function clock(seconds, withSeconds) {
    var d = new Date(seconds * 1000), pad = function (n) { return (n < 10 ? "0" : "") + n; };
    return pad(d.getHours()) + ":" + pad(d.getMinutes()) + (withSeconds ? ":" + pad(d.getSeconds()) : "");
  }

  function drawPlot(el) {
    if (!window.uPlot || el.dataset.drawn === el.dataset.plot) return;
    var spec;
    try { spec = JSON.parse(el.dataset.plot); } catch (e) { return; }
    el.dataset.drawn = el.dataset.plot;
    var hasData = spec.x && spec.x.length > 0;
    if (hasData && el._uplot && el._uplot.series.length === spec.series.length + 1) {
      el._uplot.setData([spec.x].concat(spec.series.map(function (s) { return s.values; })));
      return;
    }
    if (el._uplot) { el._uplot.destroy(); el._uplot = null; }
    el.innerHTML = "";
    if (!hasData) {
      el.innerHTML = '<div class="plot-empty">' + (spec.empty || "No data yet.") + "</div>";
      return;
    }
    var unit = spec.unit || "";
    var series = [{ label: "time" }].concat(spec.series.map(function (s, i) {
      return { label: s.label, stroke: s.color || COLORS[i % COLORS.length], width: 2,
               fill: i === 0 && spec.fill ? "rgba(47,111,237,.08)" : undefined,
               points: { show: spec.x.length < 40 },
               value: function (u, v) { return v == null ? "–" : v.toFixed(2) + " " + unit; } };
    }));
    var data = [spec.x].concat(spec.series.map(function (s) { return s.values; }));
    var span = spec.x[spec.x.length - 1] - spec.x[0];
    var opts = {
      width: Math.max(el.clientWidth, 280), height: spec.height || 220, series: series,
      axes: [{ space: 80, incrs: [1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600,
                                   7200, 21600, 43200, 86400],
               values: function (u, ticks) { return ticks.map(function (t) {
                 return clock(t, span < 600); }); } },
             { label: unit, size: 60 }],
      legend: { live: false },
      scales: { x: { time: true }, y: { range: function (u, min, max) { return [0, Math.max(max * 1.15, spec.ymin || 1)]; } } }
    };
    el._uplot = new window.uPlot(opts, data, el);
  }

  function drawAll(root) {
    (root || document).querySelectorAll(".plot[data-plot]").forEach(drawPlot);
  }
  window.modelmgrDrawPlots = drawAll;
  document.addEventListener("DOMContentLoaded", function () { drawAll(document); });
  document.addEventListener("htmx:afterSettle", function () { drawAll(document); });
  document.addEventListener("htmx:oobAfterSwap", function () { drawAll(document); });
  window.addEventListener("resize", function () {
    document.querySelectorAll(".plot[data-plot]").forEach(function (el) {
      if (el._uplot) el._uplot.setSize({ width: Math.max(el.clientWidth, 280), height: el._uplot.height });
    });
  });

  /* the status page's memory chart: one sample each time the workers region changes */
  var memory = { x: [], series: {} };
  var MAX_SAMPLES = 150;
  function sampleMemory() {
    var plot = document.getElementById("memory-plot");
    var samples = document.querySelectorAll("#workers [data-mem-used]");
    if (!plot || samples.length === 0) return;
    var now = Date.now() / 1000;
    memory.x.push(now);
    samples.forEach(function (s) {
      var key = s.dataset.memLabel;
      if (!memory.series[key]) memory.series[key] = new Array(memory.x.length - 1).fill(null);
      memory.series[key].push(Number(s.dataset.memUsed) / 1048576);
    });
    Object.keys(memory.series).forEach(function (k) {
      if (memory.series[k].length < memory.x.length) memory.series[k].push(null);
      if (memory.series[k].length > MAX_SAMPLES) memory.series[k].shift();
    });
    if (memory.x.length > MAX_SAMPLES) memory.x.shift();
    plot.dataset.plot = JSON.stringify({
      x: memory.x, unit: "MB", fill: true,
      series: Object.keys(memory.series).map(function (k) { return { label: k, values: memory.series[k] }; })
    });
    drawPlot(plot);
  }
  /* #workers is a new element after every swap: by a live update (the ws extension swaps
     it out of band, then fires htmx:wsAfterMessage; no htmx:afterSettle), by the fallback
     poll (htmx:afterSettle), or the page itself at load. Marking the element sampled makes
     each swap exactly one sample, whichever of these events announce it. */
  function sampleIfNew() {
    var workers = document.getElementById("workers");
    if (!workers || workers._memorySampled) return;
    workers._memorySampled = true;
    sampleMemory();
  }
  document.addEventListener("DOMContentLoaded", sampleIfNew);
  document.addEventListener("htmx:afterSettle", sampleIfNew);
  document.addEventListener("htmx:wsAfterMessage", sampleIfNew);
})();
