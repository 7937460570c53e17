"""The analyst's first hour on a fresh deployment: an empty dashboard fills after *Check now* without a reload,
the window and feature live in the URL (reload and Back keep them), charts keep axes and legends apart at
1280 and 1920 px, and every chart has a text summary that a page without JavaScript shows."""

from datetime import timedelta

import pytest
from django.utils import timezone
from playwright.sync_api import expect

from apps.monitoring import services
from tests.monitoring.factories import log_predictions, make_deployment

pytestmark = pytest.mark.django_db(transaction=True)

# Bounding boxes of the parts of every drawn chart that must not overlap or leave the chart.
CHART_LAYOUT_PROBLEMS = r"""
() => {
  const problems = [];
  const box = (el) => el.getBoundingClientRect();
  const overlap = (a, b) => a.width > 0 && b.width > 0 && a.left < b.right - 1 && b.left < a.right - 1 &&
                            a.top < b.bottom - 1 && b.top < a.bottom - 1;
  document.querySelectorAll(".plotly-chart .main-svg").forEach((svg) => {
    const chart = svg.closest(".plotly-chart");
    if (!chart || svg !== chart.querySelector(".main-svg")) return;
    const name = chart.dataset.figure;
    const frame = box(chart);
    const labels = [...chart.querySelectorAll(".xtick text, .ytick text, .g-xtitle text, .g-ytitle text, " +
                                              ".g-y2title text, .y2tick text, .gtitle")].filter((e) => e.textContent.trim());
    const legend = chart.querySelector(".legend");
    for (const el of labels) {
      const b = box(el);
      if (b.width === 0) continue;
      if (b.left < frame.left - 2 || b.right > frame.right + 2 || b.top < frame.top - 2 || b.bottom > frame.bottom + 2)
        problems.push(`${name}: "${el.textContent}" is clipped`);
      if (legend && overlap(box(legend), b)) problems.push(`${name}: legend covers "${el.textContent}"`);
    }
    // x tick labels: side by side they must not overlap; rotated by an angle, parallel labels need their
    // anchors far enough apart that the strips of text (one font height wide) do not cross
    const ticks = [...chart.querySelectorAll(".xtick text")].filter((e) => box(e).width > 0);
    for (let i = 1; i < ticks.length; i++) {
      const m = /rotate\((-?[\d.]+)/.exec(ticks[i].getAttribute("transform") || "");
      const angle = m ? Math.abs(parseFloat(m[1])) : 0;
      const a = box(ticks[i - 1]), b = box(ticks[i]);
      if (angle < 1) {
        if (overlap(a, b)) problems.push(`${name}: x tick labels ${i - 1} and ${i} overlap`);
      } else {
        const size = parseFloat(getComputedStyle(ticks[i]).fontSize) || 12;
        const gap = Math.abs(b.right - a.right) * Math.sin(angle * Math.PI / 180);
        if (gap < size * 0.9) problems.push(`${name}: rotated x tick labels ${i - 1} and ${i} overlap`);
      }
    }
  });
  return problems;
}
"""


def _assert_charts_readable(page, width: int):
    page.set_viewport_size({"width": width, "height": 900})
    page.wait_for_timeout(600)  # plotly's responsive relayout after the resize
    problems = page.evaluate(CHART_LAYOUT_PROBLEMS)
    assert not problems, f"at {width}px: " + "; ".join(problems)


@pytest.fixture
def fresh_deployment(project, users):
    dep = make_deployment(project, users["owner"], slug="churn-live")
    ms = services.monitor_settings_for(dep)
    ms.schedule_enabled = False  # only "Check now" computes windows in this test
    ms.save()
    return dep


def test_analyst_dashboard_fills_after_check_now_and_keeps_state_in_the_url(
        page, browser, live_server, login, shot, project, users, fresh_deployment, celery_worker):
    dep = fresh_deployment
    base = f"{live_server.url}/projects/{project.slug}/monitoring/{dep.slug}/"
    login(page, users["analyst"])
    page.goto(base)
    expect(page.locator("#dashboard-body .empty")).to_contain_text("No monitoring window yet")
    shot(page, "analyst-dashboard-empty")

    # the first predictions arrive; the analyst checks at once
    log_predictions(dep, n=600, start=timezone.now() - timedelta(minutes=5), seconds=240, shift=0.6, seed=3)
    page.evaluate("window.__sameDocument = true")
    page.select_option("#check-minutes", "15")
    page.get_by_role("button", name="Check now").click()
    expect(page.locator("#check-status")).to_contain_text("Succeeded", timeout=60_000)
    # the dashboard body refreshes itself when the job ends: no reload (the marker survives)
    expect(page.locator("#dashboard-body [data-figure='fig-heatmap'] .main-svg").first).to_be_visible(timeout=15_000)
    assert page.evaluate("window.__sameDocument") is True
    expect(page.locator("#dashboard-body")).to_contain_text("600 predictions")
    expect(page.locator("#dashboard-body .chart-summary").first).to_contain_text("Drift scores")
    # a readable prediction histogram: shares per reference decile bin, never a density in the millions
    summary = page.locator("[data-figure='fig-prediction'] ~ figcaption").inner_text()
    assert "Share of rows per bin" in summary and "%" in summary
    shot(page, "analyst-dashboard-after-check")

    # the window menu and the feature buttons put the state in the URL; reload and Back keep it
    page.select_option("#window-select", "12")
    expect(page).to_have_url(f"{base}?windows=12&feature=age")
    page.click(".feature-picker button[data-feature='amount']")
    expect(page.locator("#feature-panel[data-feature='amount']")).to_be_visible()
    expect(page).to_have_url(f"{base}?windows=12&feature=amount")
    page.reload()
    expect(page.locator("#window-select")).to_have_value("12")
    expect(page.locator("#feature-panel")).to_have_attribute("data-feature", "amount")
    expect(page.locator(".feature-picker button[data-feature='amount']")).to_have_attribute("aria-pressed", "true")
    page.go_back()
    expect(page).to_have_url(f"{base}?windows=12&feature=age")
    expect(page.locator("#feature-panel")).to_have_attribute("data-feature", "age")
    expect(page.locator(".feature-picker button[data-feature='age']")).to_have_attribute("aria-pressed", "true")
    expect(page.locator(".feature-picker button[aria-pressed]")).to_have_count(1)
    page.wait_for_selector("[data-figure='fig-feature-hist'] .main-svg")
    shot(page, "analyst-dashboard")
    for width in (1280, 1920):
        _assert_charts_readable(page, width)

    # without JavaScript the charts are text: every chart's summary is there
    nojs = browser.new_context(java_script_enabled=False, viewport={"width": 1280, "height": 860})
    try:
        npage = nojs.new_page()
        login(npage, users["analyst"])
        npage.goto(f"{base}?windows=12&feature=amount")
        captions = npage.locator("figure.chart figcaption")
        assert captions.count() >= 5
        for text in captions.all_inner_texts():
            assert text.strip() and "No data" not in text, text
        assert not npage.locator(".plotly-chart").first.is_visible()
        shot(npage, "analyst-dashboard-no-js", javascript=False)
    finally:
        nojs.close()
