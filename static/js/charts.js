// Draws every Plotly figure found in the page and again after each htmx swap.
// A chart is <div class="plotly-chart" data-figure="ID"></div> next to {{ figure|json_script:"ID" }}.
(function () {
  function draw(root) {
    if (!window.Plotly) return;
    (root || document).querySelectorAll(".plotly-chart[data-figure]").forEach(function (el) {
      var src = document.getElementById(el.dataset.figure);
      if (!src) return;
      var fig = JSON.parse(src.textContent);
      var layout = Object.assign({margin: {t: 30, r: 10, b: 40, l: 50}, autosize: true,
        font: {family: "system-ui, sans-serif", size: 12}, paper_bgcolor: "rgba(0,0,0,0)"}, fig.layout || {});
      window.Plotly.react(el, fig.data || [], layout, {displaylogo: false, responsive: true});
    });
  }
  document.addEventListener("DOMContentLoaded", function () { draw(document); });
  document.addEventListener("htmx:afterSwap", function (e) { draw(e.target); });
  window.slipwayDrawCharts = draw;
})();
