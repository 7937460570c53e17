// The portal's small behaviours, bound by data attributes (no inline handlers: the CSP forbids them).
// Delegated from document, so content that htmx swaps in works without re-binding.
(function () {
  document.addEventListener("click", function (e) {
    // Feature buttons on the monitoring dashboard: remember the chosen feature and mark its button.
    var btn = e.target.closest("[data-feature-picker] button[data-feature]");
    if (btn) {
      var input = document.getElementById("feature-input");
      if (input) input.value = btn.dataset.feature;
      btn.parentNode.querySelectorAll("button").forEach(function (b) {
        b.classList.remove("btn-primary");
        b.removeAttribute("aria-pressed");
      });
      btn.classList.add("btn-primary");
      btn.setAttribute("aria-pressed", "true");
    }
    // <a data-history-back href="fallback">: back to the previous page when there is one.
    var back = e.target.closest("a[data-history-back]");
    if (back && window.history.length > 1) {
      e.preventDefault();
      window.history.back();
    }
  });
  // The pressed feature button follows the feature panel shown — also after Back restores an older page
  // from htmx's history cache (whose snapshot was taken after the click had already moved the mark).
  function syncFeaturePicker() {
    var panel = document.getElementById("feature-panel");
    var picker = document.querySelector("[data-feature-picker]");
    if (!panel || !picker || !panel.dataset.feature) return;
    picker.querySelectorAll("button[data-feature]").forEach(function (b) {
      var on = b.dataset.feature === panel.dataset.feature;
      b.classList.toggle("btn-primary", on);
      if (on) b.setAttribute("aria-pressed", "true"); else b.removeAttribute("aria-pressed");
    });
    var input = document.getElementById("feature-input");
    if (input) input.value = panel.dataset.feature;
  }
  document.addEventListener("htmx:historyRestore", syncFeaturePicker);
  document.addEventListener("htmx:afterSettle", syncFeaturePicker);
  // A link to a part of the page inside a closed <details> (the readiness page's sections) opens it.
  function openTarget() {
    var id = decodeURIComponent(window.location.hash.slice(1));
    var el = id && document.getElementById(id);
    for (; el; el = el.parentElement) if (el.tagName === "DETAILS") el.open = true;
  }
  window.addEventListener("hashchange", openTarget);
  document.addEventListener("DOMContentLoaded", openTarget);
  document.addEventListener("change", function (e) {
    // <select data-autosubmit>: choosing a value submits its form (a plain GET form keeps working without JS).
    var el = e.target.closest("select[data-autosubmit]");
    if (el && el.form) {
      if (el.form.requestSubmit) el.form.requestSubmit(); else el.form.submit();
    }
  });
})();
