// The statistics dashboards' charts (Apache ECharts, served by the site itself).
// The page passes its figures with Django's json_script as #dashboard-data; every element with
// data-chart="trend|units|categories" gets that chart. Each chart has a table beside or below it
// with the same numbers, so nothing here is the only way to read them.
(function () {
  "use strict";

  var COLORS = {
    coverage: "#0d6efd",
    participation: "#198754",
    behind: "#dc3545",
    ahead: "#198754",
    plain: "#0d6efd",
    students: "#adb5bd",
    expected: "#212529",
  };
  var PHASE_BANDS = ["rgba(13,110,253,0.06)", "rgba(25,135,84,0.06)"];
  // Tooltips drawn on the canvas: ECharts' HTML tooltips carry inline style attributes, which the
  // site's Content-Security-Policy refuses.
  var TOOLTIP = { renderMode: "richText" };

  function percent(value) {
    return value === null || value === undefined ? "—" : value + "%";
  }

  function trendOption(data) {
    var coverage = data.days.map(function (day, i) { return [day, data.coverage[i]]; });
    var participation = data.days.map(function (day, i) { return [day, data.participation[i]]; });
    var bands = data.phases.map(function (phase, i) {
      return [
        { name: phase.label, xAxis: phase.start, itemStyle: { color: PHASE_BANDS[i % 2] } },
        { xAxis: phase.end },
      ];
    });
    return {
      tooltip: Object.assign({ trigger: "axis", valueFormatter: percent }, TOOLTIP),
      legend: { bottom: 0 },
      grid: { left: 48, right: 16, top: 24, bottom: 56 },
      xAxis: { type: "time", axisLabel: { hideOverlap: true } },
      yAxis: { type: "value", min: 0, max: 100, axisLabel: { formatter: "{value}%" } },
      series: [
        {
          name: "家访率",
          type: "line",
          data: coverage,
          showSymbol: coverage.length < 40,
          connectNulls: true,
          itemStyle: { color: COLORS.coverage },
          markArea: { silent: true, label: { color: "#6c757d", fontSize: 11 }, data: bands },
        },
        {
          name: "走访率",
          type: "line",
          data: participation,
          showSymbol: participation.length < 40,
          connectNulls: true,
          itemStyle: { color: COLORS.participation },
        },
      ],
    };
  }

  function unitsOption(data, element) {
    // One bar a unit, first unit on top; the chart grows with the number of units.
    element.style.height = Math.max(240, data.names.length * 24 + 80) + "px";
    var hasLine = data.expected !== null && data.expected !== undefined;
    var bars = data.values.map(function (value, i) {
      var color = COLORS.plain;
      if (hasLine) {
        color = data.behind[i] ? COLORS.behind : COLORS.ahead;
      }
      return { value: value, itemStyle: { color: color } };
    });
    var series = {
      name: data.title,
      type: "bar",
      data: bars,
      barMaxWidth: 18,
      label: { show: true, position: "right", formatter: function (p) { return percent(p.value); } },
    };
    if (hasLine) {
      series.markLine = {
        symbol: "none",
        silent: true,
        lineStyle: { color: COLORS.expected, type: "dashed", width: 2 },
        // The category axis runs top-down (inverse), so the line's start is at the top.
        label: { formatter: "今天应达 " + data.expected + "%", position: "start" },
        data: [{ xAxis: data.expected }],
      };
    }
    return {
      tooltip: Object.assign({ trigger: "axis", axisPointer: { type: "shadow" }, valueFormatter: percent }, TOOLTIP),
      grid: { left: 8, right: 56, top: hasLine ? 28 : 8, bottom: 24, containLabel: true },
      xAxis: { type: "value", min: 0, max: 100, axisLabel: { formatter: "{value}%" } },
      // On a phone the names take at most a third of the width, truncated, so the bars keep room.
      yAxis: {
        type: "category",
        data: data.names,
        inverse: true,
        axisLabel: { width: Math.min(140, Math.round(element.clientWidth / 3)), overflow: "truncate" },
      },
      series: [series],
    };
  }

  function categoriesOption(data, element) {
    // Six category names under six pairs of bars: each label gets its share of the width and
    // wraps inside it, smaller on a phone, so neighbours never overlap.
    var share = Math.floor((element.clientWidth - 40) / Math.max(1, data.labels.length)) - 6;
    var narrow = element.clientWidth < 576;
    return {
      tooltip: Object.assign({ trigger: "axis", axisPointer: { type: "shadow" } }, TOOLTIP),
      legend: { top: 0 },
      grid: { left: 8, right: 16, top: 36, bottom: 8, containLabel: true },
      xAxis: {
        type: "category",
        data: data.labels,
        axisLabel: { interval: 0, width: Math.max(24, Math.min(96, share)), overflow: "break", fontSize: narrow ? 10 : 12 },
      },
      yAxis: { type: "value", minInterval: 1 },
      series: [
        { name: "学生数", type: "bar", data: data.students, itemStyle: { color: COLORS.students } },
        { name: "已走访", type: "bar", data: data.visited, itemStyle: { color: COLORS.coverage } },
      ],
    };
  }

  var BUILDERS = { trend: trendOption, units: unitsOption, categories: categoriesOption };

  function draw() {
    var source = document.getElementById("dashboard-data");
    if (!source || !window.echarts) {
      return;
    }
    var data = JSON.parse(source.textContent);
    var charts = [];
    document.querySelectorAll("[data-chart]").forEach(function (element) {
      var kind = element.getAttribute("data-chart");
      if (!BUILDERS[kind] || !data[kind]) {
        element.hidden = true;
        return;
      }
      var option = BUILDERS[kind](data[kind], element);
      var chart = window.echarts.init(element, null, { locale: "ZH" });
      chart.setOption(option);
      charts.push(chart);
    });
    window.addEventListener("resize", function () {
      charts.forEach(function (chart) { chart.resize(); });
    });
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", draw);
  } else {
    draw();
  }
})();
