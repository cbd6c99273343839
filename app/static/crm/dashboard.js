/* Draws the dashboard's panels with the locally served Plotly. Data comes from the page's
   #crm-panels JSON block; a click on a bar, slice or point opens the rows behind it. */
(function () {
  "use strict";
  var panels = JSON.parse(document.getElementById("crm-panels").textContent);
  var config = JSON.parse(document.getElementById("crm-dashboard-config").textContent);
  var zh = config.lang !== "en";
  if (window.Plotly && zh) {
    Plotly.register({
      moduleType: "locale", name: "zh-CN",
      dictionary: {"Download plot as a png": "下载图片", "Zoom": "缩放", "Pan": "平移", "Reset axes": "重置坐标轴",
                   "Autoscale": "自动缩放", "Zoom in": "放大", "Zoom out": "缩小", "Box Select": "框选", "Lasso Select": "套索选择",
                   "Toggle Spike Lines": "切换辅助线", "Show closest data on hover": "显示最近数据",
                   "Compare data on hover": "比较数据", "Double-click to zoom back out": "双击还原"},
      format: {days: ["周日", "周一", "周二", "周三", "周四", "周五", "周六"],
               shortDays: ["日", "一", "二", "三", "四", "五", "六"],
               months: ["一月", "二月", "三月", "四月", "五月", "六月", "七月", "八月", "九月", "十月", "十一月", "十二月"],
               shortMonths: ["1月", "2月", "3月", "4月", "5月", "6月", "7月", "8月", "9月", "10月", "11月", "12月"],
               date: "%Y-%m-%d", decimal: ".", thousands: ","}
    });
  }
  var PALETTE = {red: "#d9534f", orange: "#f0ad4e", yellow: "#f7d154", green: "#5cb85c", blue: "#337ab7",
                 grey: "#999999", gray: "#999999", purple: "#8e6bbf", teal: "#3fb8af", black: "#333333"};
  function color(name) { return PALETTE[name] || name || undefined; }

  function traces(p) {
    var labels = p.categories.map(function (c) { return c.label; });
    var keys = p.categories.map(function (c) { return c.key; });
    var colors = p.categories.map(function (c) { return color(c.color); });
    var colored = colors.some(function (c) { return !!c; }) && p.measures.length === 1;
    if (p.chart === "pie") {
      return [{type: "pie", labels: labels, values: p.series[0], customdata: keys, hole: 0.35, sort: false,
               marker: colored ? {colors: colors} : undefined, textinfo: "percent", hovertemplate: "%{label}: %{value:,}<extra></extra>"}];
    }
    if (p.chart === "radar") {
      if (p.measures.length > 1) {  // one polygon per category over the measures (e.g. a technician's four dimensions)
        return p.categories.map(function (c, i) {
          var r = p.series.map(function (s) { return s[i]; });
          return {type: "scatterpolar", name: c.label, r: r.concat([r[0]]), theta: p.measures.concat([p.measures[0]]),
                  customdata: p.measures.map(function () { return c.key; }).concat([c.key]), fill: "toself", opacity: 0.6};
        });
      }
      return [{type: "scatterpolar", name: p.measures[0], r: p.series[0].concat([p.series[0][0]]), theta: labels.concat([labels[0]]),
               customdata: keys.concat([keys[0]]), fill: "toself"}];
    }
    return p.series.map(function (s, m) {
      var t = {type: p.chart === "line" ? "scatter" : "bar", name: p.measures[m], x: labels, y: s, customdata: keys,
               hovertemplate: "%{x}: %{y:,}<extra>" + p.measures[m] + "</extra>"};
      if (p.chart === "line") { t.mode = "lines+markers"; t.connectgaps = false; }
      if (p.chart === "bar" && colored) { t.marker = {color: colors}; }
      return t;
    });
  }

  var WIDEST = 100;  // pixels of a category name shown slanted under an axis (8 Chinese characters); the whole name is in the hover
  function shorten(label) {  // a label as given (the axis values), or its shortened text
    var text = String(label), kept = "", width = 0, chars = Array.from(text);
    if (textWidth(text) <= WIDEST) { return label; }
    for (var i = 0; i < chars.length && width + textWidth(chars[i]) <= WIDEST - 12; i++) {
      kept += chars[i];
      width += textWidth(chars[i]);
    }
    return kept + "…";
  }
  function textWidth(text) {  // pixels at 12 px: wide (CJK) characters count double
    return Array.from(String(text)).reduce(function (w, ch) { return w + (ch.charCodeAt(0) > 0x2e7f ? 12 : 7); }, 0);
  }

  // The slant of a bar or line panel's category labels: flat when each fits its slot, else 45°,
  // else upright, so that neighbours never overlap (labels are about 17 px tall).
  function slant(shown, plotWidth) {
    var slot = plotWidth / Math.max(1, shown.length);
    var widest = shown.reduce(function (w, t) { return Math.max(w, textWidth(t)); }, 0);
    return widest + 6 <= slot ? 0 : slot >= 26 ? -45 : -90;
  }

  // Money in the units the office reads (元, 万, 亿), axes and hovers alike: the values are drawn
  // divided by the unit, and the unit follows every number ("80 万", "1.2 亿", never "800M").
  function moneyUnit(p) {
    if (!zh || !p.money || !p.money.some(function (m) { return m; })) { return null; }
    var most = 0;
    p.series.forEach(function (s, m) {
      if (p.money[m]) { s.forEach(function (v) { most = Math.max(most, Math.abs(v || 0)); }); }
    });
    return most >= 1e8 ? {div: 1e8, word: " 亿"} : most >= 1e4 ? {div: 1e4, word: " 万"} : {div: 1, word: " 元"};
  }
  function inUnit(p, unit) {
    if (!unit) { return p; }
    var copy = JSON.parse(JSON.stringify(p));
    copy.series = p.series.map(function (s, m) {
      return p.money[m] ? s.map(function (v) { return v === null ? null : v / unit.div; }) : s;
    });
    return copy;
  }

  function draw(p) {
    var el = document.getElementById("chart-" + p.name);
    if (!el || !window.Plotly) { return; }
    var empty = p.series.every(function (s) { return s.every(function (v) { return v === null || v === 0; }); });
    if (empty) {
      el.style.height = "auto";
      el.className += " crm-panel-empty text-muted";
      el.textContent = config.empty;
      return;
    }
    var labels = p.categories.map(function (c) { return c.label; });
    var plotWidth = el.clientWidth - 70;  // less the margins: a first guess, checked once drawn (fit)
    var shown = slant(labels, plotWidth) === 0 ? labels : labels.map(shorten);  // whole names when they fit side by side
    var layout = {margin: {l: 50, r: 20, t: 10, b: 60}, showlegend: p.measures.length > 1 || p.chart === "pie" || p.chart === "radar",
                  legend: {orientation: "h"}, font: {family: "'Noto Sans CJK SC', 'Microsoft YaHei', sans-serif", size: 12},
                  yaxis: {separatethousands: true, rangemode: "tozero", exponentformat: "none"}, xaxis: {type: "category", automargin: true, tickvals: labels, ticktext: shown, tickangle: slant(shown, plotWidth)},
                  polar: {radialaxis: {visible: true, rangemode: "tozero", tickfont: {size: 10}, angle: 45, tickangle: 0, nticks: 4},
                          angularaxis: {tickfont: {size: 11}}}, separators: ".,"};
    if (p.chart === "bar" || p.chart === "line") {  // the legend above: below, it would sit on the slanted labels
      layout.legend = {orientation: "h", x: 0, xanchor: "left", y: 1.02, yanchor: "bottom"};
    }
    if (p.chart === "radar") {  // room around the circle for the axis names (they are drawn outside it)
      var names = p.measures.length > 1 ? p.measures : labels;
      var ticks = names.map(shorten);
      var side = Math.min(el.clientWidth * 0.3, 12 + ticks.reduce(function (w, t) { return Math.max(w, textWidth(t)); }, 0));
      layout.margin = {l: side, r: side, t: 30, b: 30};
      layout.polar.angularaxis.tickvals = names;
      layout.polar.angularaxis.ticktext = ticks;
    }
    // the labels' slant again at the panel's real width, known once drawn (and after a resize);
    // only ever more upright, as a steeper slant can narrow the plot (automargin) and back again
    function fit() {
      var angle = slant(shown, el._fullLayout._size.w);
      return Math.abs(angle) > Math.abs(el.layout.xaxis.tickangle) ? Plotly.relayout(el, {"xaxis.tickangle": angle}) : null;
    }
    var unit = moneyUnit(p);
    var data = traces(inUnit(p, unit));
    if (unit && p.chart !== "pie" && p.chart !== "radar") {
      layout.yaxis.ticksuffix = unit.word;
      data.forEach(function (t) { t.hovertemplate = "%{x}: %{y:,.2~f}" + unit.word + "<extra>" + (t.name || "") + "</extra>"; });
    } else if (p.money && p.money.some(function (m) { return m; }) && !zh && p.chart !== "pie" && p.chart !== "radar") {
      layout.yaxis.tickprefix = "¥";  // English readers read millions: ¥20M
      layout.yaxis.tickformat = "~s";
    }
    var drawn = Plotly.newPlot(el, data, layout, {displaylogo: false, responsive: true, locale: zh ? "zh-CN" : "en",
                                                       modeBarButtonsToRemove: ["select2d", "lasso2d"]});
    if (p.chart === "bar" || p.chart === "line") {
      drawn = drawn.then(fit);
      el.on("plotly_afterplot", fit);
    }
    if (p.drill) {
      el.on("plotly_click", function (ev) {
        var point = ev.points && ev.points[0];
        if (!point || point.customdata === undefined) { return; }
        var key = Array.isArray(point.customdata) ? point.customdata[0] : point.customdata;
        window.location = config.drill.replace("__NAME__", encodeURIComponent(p.name)) + "?key=" + encodeURIComponent(key);
      });
    }
    drawn.then(function () { el.setAttribute("data-drawn", "1"); });
  }

  // a panel in a closed group (the home page of someone who sees many) is drawn when the group opens:
  // Plotly needs the panel's real width
  function drawWhenShown(p) {
    var el = document.getElementById("chart-" + p.name);
    var group = el && el.closest("details");
    if (group && !group.open) {
      group.addEventListener("toggle", function opened() {
        if (group.open) { group.removeEventListener("toggle", opened); draw(p); }
      });
      return;
    }
    draw(p);
  }
  panels.forEach(function (p) { if (!p.denied && !p.empty && p.chart !== "table") { drawWhenShown(p); } });
})();
