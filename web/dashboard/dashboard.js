/* The operator's dashboard: asks for an admin key, then draws what the admin endpoints say.
 *
 *   GET /v1/dashboard                    rates, latency percentiles, model versions, experiments,
 *                                        operations (ranker fallbacks, feature store, event bus)
 *   GET /v1/experiments/NAME/report      per variant: totals, each metric against the control
 *                                        (interval, always-valid p, verdict) and its timeline
 *
 * Every number shown is the API's own, formatted; each table cell keeps the raw value in
 * data-value, so what the page shows can be checked against the report.
 */
(function () {
  "use strict";
  var KEY = "nextbest.adminKey";
  var REFRESH_MS = 5000;
  var PLOT_CONFIG = { displayModeBar: false, responsive: true };
  var COLOURS = ["#2b59c3", "#c2410c", "#15803d", "#7c3aed", "#0e7490", "#a16207"];
  var timer = null;

  function $(id) { return document.getElementById(id); }

  function adminKey() { return sessionStorage.getItem(KEY) || ""; }

  function askForKey(message) {
    sessionStorage.removeItem(KEY);
    if (timer) { clearInterval(timer); timer = null; }
    $("board").hidden = true;
    $("key-form").hidden = false;
    $("status").textContent = message || "";
  }

  function api(path) {
    return fetch(path, { headers: { Authorization: "Bearer " + adminKey() } }).then(function (reply) {
      if (reply.status === 401 || reply.status === 403) {
        askForKey("that key is not an admin key");
        throw new Error("not an admin key");
      }
      if (!reply.ok) { throw new Error(path + ": HTTP " + reply.status); }
      return reply.json();
    });
  }

  function number(value, digits) {
    if (value === null || value === undefined || Number.isNaN(value)) { return "-"; }
    // trailing zeros of the mantissa go ("0.2500" -> "0.25"), never the exponent's
    var parts = Number(value).toPrecision(digits || 4).split("e");
    var mantissa = parts[0].indexOf(".") >= 0 ? parts[0].replace(/\.?0+$/, "") : parts[0];
    return parts.length > 1 ? mantissa + "e" + parts[1] : mantissa;
  }

  function percent(value) {
    if (value === null || value === undefined) { return "-"; }
    return (value >= 0 ? "+" : "") + (100 * value).toFixed(1) + "%";
  }

  function cell(text, raw, className) {
    var td = document.createElement("td");
    td.textContent = text;
    if (raw !== undefined && raw !== null) { td.dataset.value = String(raw); }
    if (className) { td.className = className; }
    return td;
  }

  function row(cells) {
    var tr = document.createElement("tr");
    cells.forEach(function (td) { tr.appendChild(td); });
    return tr;
  }

  function table(headers, rows, className) {
    var t = document.createElement("table");
    if (className) { t.className = className; }
    var head = document.createElement("tr");
    headers.forEach(function (h) { var th = document.createElement("th"); th.textContent = h; head.appendChild(th); });
    t.appendChild(document.createElement("thead")).appendChild(head);
    var body = t.appendChild(document.createElement("tbody"));
    rows.forEach(function (r) { body.appendChild(r); });
    return t;
  }

  function times(points) { return points.map(function (p) { return new Date(p.at * 1000); }); }

  function drawServer(board) {
    var at = times(board.series);
    var pick = function (name) { return board.series.map(function (p) { return p[name]; }); };
    Plotly.react($("rates"), [
      { x: at, y: pick("events_per_second"), name: "events/s", mode: "lines", line: { color: COLOURS[0] } },
      { x: at, y: pick("recommendations_per_second"), name: "lists/s", mode: "lines", line: { color: COLOURS[1] } },
    ], { margin: { t: 10, r: 10, b: 40, l: 50 }, legend: { orientation: "h" }, yaxis: { rangemode: "tozero" } }, PLOT_CONFIG);
    Plotly.react($("latency"), ["p50_ms", "p95_ms", "p99_ms"].map(function (name, k) {
      return { x: at, y: pick(name), name: name.replace("_ms", ""), mode: "lines", connectgaps: false,
               line: { color: COLOURS[k] } };
    }), { margin: { t: 10, r: 10, b: 40, l: 50 }, legend: { orientation: "h" }, yaxis: { rangemode: "tozero", title: "ms" } }, PLOT_CONFIG);
    var body = $("models").querySelector("tbody");
    body.replaceChildren.apply(body, board.models.map(function (m) {
      return row([cell(m.version), cell(m.model), cell(m.serves),
                  cell(new Date(m.loaded_at * 1000).toLocaleString(), m.loaded_at)]);
    }));
  }

  function drawOperations(ops) {
    var lists = ops.ranked_lists || {};
    var learned = lists.learned || 0, fallback = lists.fallback || 0;
    var ranker = learned + fallback === 0 ? ["no lists yet", ""] :
      [fallback > 0 ? "falling back" : "ranking",
       learned.toLocaleString() + " lists ranked, " + fallback.toLocaleString() +
       " in the generators' order"];
    var store = ops.feature_store, storeRow;
    if (!store) {
      storeRow = ["not configured", "no Redis (NEXTBEST_REDIS_URL)"];
    } else if (store.error) {
      storeRow = ["unavailable", store.error];
    } else {
      var day = new Date(store.as_of * 1000).toISOString().slice(0, 10);
      var rows = Object.keys(store.rows).map(function (k) { return store.rows[k].toLocaleString() + " " + k; });
      storeRow = ["serving " + day, "version " + store.version + ": " + rows.join(", ")];
    }
    var bus = ops.event_bus, busRow;
    if (!bus) {
      busRow = ["off", "events go straight to the log"];
    } else {
      var waiting = bus.waiting || 0, handed = bus.unacknowledged || 0;
      busRow = [waiting > 0 ? "behind" : "caught up",
                waiting.toLocaleString() + " waiting, " + handed.toLocaleString() + " handed out"];
    }
    var body = $("operations").querySelector("tbody");
    body.replaceChildren(
      row([cell("learned ranker"), cell(ranker[0]), cell(ranker[1], fallback)]),
      row([cell("feature store"), cell(storeRow[0]), cell(storeRow[1], store && store.version)]),
      row([cell("event bus"), cell(busRow[0]), cell(busRow[1], bus && bus.waiting)])
    );
    body.dataset.state = JSON.stringify(ops);
  }

  function section(name) {
    var id = "experiment-" + name;
    var found = document.getElementById(id);
    if (found) { return found; }
    var el = document.createElement("section");
    el.className = "card experiment";
    el.id = id;
    el.dataset.experiment = name;
    $("experiments").appendChild(el);
    return el;
  }

  function drawExperiment(report) {
    var el = section(report.experiment);
    el.replaceChildren();
    var title = el.appendChild(document.createElement("h2"));
    title.textContent = report.experiment + " ";
    var small = title.appendChild(document.createElement("small"));
    small.textContent = "on " + report.placement + ", control " + report.control + ", " +
      report.lists.toLocaleString() + " lists";
    if (report.sample_ratio_mismatch) {
      var warn = el.appendChild(document.createElement("p"));
      warn.className = "warning";
      warn.textContent = "Sample-ratio mismatch (p = " + number(report.sample_ratio_p, 3) +
        "): the split is broken, do not trust the rest.";
    }
    var variants = Object.keys(report.totals);
    el.appendChild(table(["variant", "shoppers", "lists", "clicks", "carts", "purchases", "revenue"],
      variants.map(function (v) {
        var t = report.totals[v];
        return row([cell(v), cell(t.users.toLocaleString(), t.users), cell(t.impressions.toLocaleString(), t.impressions),
                    cell(t.clicks.toLocaleString(), t.clicks), cell(t.carts.toLocaleString(), t.carts),
                    cell(t.purchases.toLocaleString(), t.purchases), cell(t.revenue.toFixed(2), t.revenue)]);
      }), "totals"));
    if (!report.results.length) {
      el.appendChild(document.createElement("p")).textContent = "Too few shoppers in a variant for statistics yet.";
      return;
    }
    el.appendChild(document.createElement("h3")).textContent = "Against " + report.control;
    el.appendChild(table(["variant", "metric", report.control, "variant's", "lift", "95% interval of the difference",
                          "p (always valid)", "verdict"],
      report.results.map(function (r) {
        var verdict = cell(r.verdict, r.verdict, "");
        verdict.innerHTML = "";
        var badge = verdict.appendChild(document.createElement("span"));
        badge.className = "verdict " + (r.verdict === "better" || r.verdict === "worse" ? r.verdict : "");
        badge.textContent = r.verdict;
        var tr = row([cell(r.variant), cell(r.metric), cell(number(r.control_value), r.control_value),
                      cell(number(r.variant_value), r.variant_value), cell(percent(r.lift), r.lift),
                      cell("[" + number(r.low) + ", " + number(r.high) + "]", r.low + "," + r.high),
                      cell(number(r.p_always_valid, 3), r.p_always_valid), verdict]);
        tr.dataset.metric = r.metric;
        tr.dataset.variant = r.variant;
        return tr;
      }), "results"));
    var charts = el.appendChild(document.createElement("div"));
    charts.className = "charts";
    var metrics = [];
    report.results.forEach(function (r) { if (metrics.indexOf(r.metric) < 0) { metrics.push(r.metric); } });
    // every cell first, then the charts: a chart drawn while the grid held fewer cells would
    // take a wider one's width
    var boxes = metrics.map(function (metric) {
      var box = charts.appendChild(document.createElement("div"));
      box.appendChild(document.createElement("h3")).textContent = metric;
      box.appendChild(document.createElement("div")).className = "chart";
      return box;
    });
    metrics.forEach(function (metric, m) {
      var box = boxes[m];
      var div = box.querySelector(".chart");
      var traces = [];
      variants.filter(function (v) { return v !== report.control; }).forEach(function (variant, k) {
        var points = report.timeline.map(function (p) {
          var found = p.results.filter(function (r) { return r.metric === metric && r.variant === variant; })[0];
          return found ? { at: p.at, r: found } : null;
        }).filter(Boolean);
        var at = times(points);
        var colour = COLOURS[(k + 1) % COLOURS.length];
        traces.push({ x: at, y: points.map(function (p) { return p.r.high; }), mode: "lines", line: { width: 0 },
                      showlegend: false, hoverinfo: "skip" });
        traces.push({ x: at, y: points.map(function (p) { return p.r.low; }), mode: "lines", line: { width: 0 },
                      fill: "tonexty", fillcolor: colour + "33", showlegend: false, hoverinfo: "skip" });
        traces.push({ x: at, y: points.map(function (p) { return p.r.difference; }), mode: "lines+markers",
                      name: variant + " - " + report.control, line: { color: colour } });
      });
      Plotly.react(div, traces, {
        yaxis: { title: { text: "difference, 95% interval", font: { size: 11 } } },
        margin: { t: 10, r: 10, b: 40, l: 60 }, legend: { orientation: "h" },
        shapes: [{ type: "line", xref: "paper", x0: 0, x1: 1, y0: 0, y1: 0, line: { color: "#98a2b3", dash: "dot" } }],
        width: box.clientWidth || undefined,  // its grid cell's (read now: laid out already)
      }, PLOT_CONFIG);
    });
  }

  function refresh() {
    return api("/v1/dashboard").then(function (board) {
      $("key-form").hidden = true;
      $("board").hidden = false;
      drawServer(board);
      drawOperations(board.operations);
      var running = board.experiments;
      Array.prototype.forEach.call(document.querySelectorAll("section.experiment"), function (el) {
        if (running.indexOf(el.dataset.experiment) < 0) { el.remove(); }
      });
      return Promise.all(running.map(function (name) {
        return api("/v1/experiments/" + encodeURIComponent(name) + "/report?points=12").then(drawExperiment);
      })).then(function () {
        document.body.dataset.loaded = String(Date.now());
        $("status").textContent = "updated " + new Date().toLocaleTimeString();
      });
    }).catch(function (error) {
      if (adminKey()) { $("status").textContent = String(error.message || error); }
    });
  }

  function start() {
    refresh();
    if (!timer) { timer = setInterval(refresh, REFRESH_MS); }
  }

  $("key-form").addEventListener("submit", function (event) {
    event.preventDefault();
    sessionStorage.setItem(KEY, $("admin-key").value.trim());
    start();
  });

  window.nextbestDashboard = { number: number, percent: percent };  // for the page's test
  if (adminKey()) { start(); } else { askForKey(); }
})();
