// Draws every Plotly figure found in the page and again after each htmx swap.
// A chart is {% chart figure "ID" "Title" %} (apps/common/templatetags/charts.py): the figure's JSON in a
// json_script block, <div class="plotly-chart" data-figure="ID"> to draw into, and a text summary.
// Layout defaults keep axes, tick labels and legends apart at any width: axes reserve the room their labels
// need (automargin) and legends sit above the plot, never across the x-axis labels.
(function () {
  document.documentElement.classList.add("js");

  function axisDefaults(layout) {
    Object.keys(layout).forEach(function (key) {
      if (/^[xy]axis\d*$/.test(key) && layout[key] && typeof layout[key] === "object") {
        layout[key] = Object.assign({automargin: true}, layout[key]);
      }
    });
    ["xaxis", "yaxis"].forEach(function (key) {
      if (!layout[key]) layout[key] = {automargin: true};
    });
  }

  function layoutFor(fig) {
    var given = fig.layout || {};
    var layout = Object.assign({autosize: true, font: {family: "system-ui, sans-serif", size: 12},
                                paper_bgcolor: "rgba(0,0,0,0)"}, given);
    var title = given.title && (given.title.text || typeof given.title === "string");
    var traces = (fig.data || []).filter(function (t) { return t.showlegend !== false; }).length;
    var legend = given.showlegend !== false && (traces > 1 || given.showlegend === true);
    if (legend) {
      layout.legend = Object.assign({orientation: "h", x: 0, xanchor: "left", y: 1.02, yanchor: "bottom"},
                                    given.legend || {});
      if (layout.legend.orientation === "h" && !(given.legend && given.legend.y !== undefined)) {
        layout.legend.y = 1.02;
        layout.legend.yanchor = "bottom";
      }
    }
    if (title) {
      layout.title = Object.assign({x: 0, xanchor: "left", y: 0.98, yanchor: "top"},
                                   typeof given.title === "string" ? {text: given.title} : given.title);
    }
    var top = (title ? 36 : 10) + (legend ? 28 : 0);
    layout.margin = Object.assign({t: top, r: 16, b: 40, l: 50, autoexpand: true}, given.margin || {});
    layout.margin.t = Math.max(layout.margin.t, top);
    axisDefaults(layout);
    return layout;
  }

  function draw(root) {
    if (!window.Plotly) return;
    (root || document).querySelectorAll(".plotly-chart[data-figure]").forEach(function (el) {
      var src = document.getElementById(el.dataset.figure);
      if (!src) return;
      var fig = JSON.parse(src.textContent);
      if (el.dataset.height) {  // set through the CSSOM: the CSP allows no style="" attribute
        el.style.height = parseInt(el.dataset.height, 10) + "px";
        el.style.minHeight = "0";
      }
      window.Plotly.react(el, fig.data || [], layoutFor(fig), {displaylogo: false, responsive: true});
    });
  }
  document.addEventListener("DOMContentLoaded", function () { draw(document); });
  document.addEventListener("htmx:afterSwap", function (e) { draw(e.target); });
  // Back/Forward: htmx puts the saved page back (plain SVG without Plotly's state): draw it anew.
  document.addEventListener("htmx:historyRestore", function () {
    document.querySelectorAll(".plotly-chart[data-figure]").forEach(function (el) {
      if (window.Plotly) window.Plotly.purge(el);
      el.replaceChildren();
    });
    draw(document);
  });
  window.slipwayDrawCharts = draw;
})();
