"""The planners' web app in a real headless browser (Playwright for Python driving the system's Chromium).

One ``promo-opt serve`` process for the module; a planner signs in, uploads a campaign, trains,
drags the budget slider, creates a targeting list and downloads it; a read-only key is refused a
job; a bad upload's message appears next to its field; axe-core finds no serious violation.
Every number the page shows is checked against the API's answer for the same question.

Needs Chromium (``apt-get install chromium``: ``.ci/run`` installs it) and the ``playwright``
package (dev extra); skipped with the reason otherwise. ``PROMO_OPT_SCREENSHOTS=docs/web-app``
(``make screenshots``) keeps the screenshots for the README.
"""

from __future__ import annotations

import io
import os
import re
import shutil
from pathlib import Path

import httpx
import pandas as pd
import pytest

from promo_opt.simulation import load_world
from tests.conftest import create_key
from tests.service_harness import Receiver, Server

playwright_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed (pip install -e '.[dev]')")

expect = playwright_api.expect
CHROMIUM = os.environ.get("PROMO_OPT_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
if CHROMIUM is None and os.environ.get("CI") == "true":  # CI installs it (.ci/run): a skip there would hide a gap
    pytest.fail("CI: no Chromium for the browser tests; .ci/run installs the 'chromium' package", pytrace=False)
pytestmark = [pytest.mark.browser,
              pytest.mark.skipif(CHROMIUM is None, reason="no Chromium (apt-get install chromium; .ci/run does)")]
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-dev-shm-usage"]
AXE = Path(__file__).parent / "assets" / "axe-core" / "axe.min.js"
JOB_TIMEOUT_MS = 300_000  # a training job on a loaded 2-core machine; the page polls, the test waits


@pytest.fixture(scope="module")
def campaign(tmp_path_factory) -> Path:
    return load_world("travel").write_campaign(tmp_path_factory.mktemp("web-campaign"), seed=7, n_train=3000,
                                               n_candidates=1500)


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    d = tmp_path_factory.mktemp("web") / "data"
    d.mkdir()
    keys = {"rw": create_key(d, "read,write"), "ro": create_key(d, "read")}
    s = Server(d).start()
    s.keys = keys
    yield s
    s.stop()


@pytest.fixture(scope="module")
def browser():
    with playwright_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        yield b
        b.close()


@pytest.fixture(scope="module")
def shots(tmp_path_factory) -> Path:
    keep = os.environ.get("PROMO_OPT_SCREENSHOTS")
    d = Path(keep) if keep else tmp_path_factory.mktemp("screenshots")
    d.mkdir(parents=True, exist_ok=True)
    return d


def api(server, key="rw") -> httpx.Client:
    return httpx.Client(base_url=server.url, headers={"X-API-Key": server.keys[key]}, timeout=60)


def open_page(browser, server, **context):
    ctx = browser.new_context(viewport={"width": 1200, "height": 900}, accept_downloads=True, **context)
    page = ctx.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.errors = errors
    return ctx, page


def upload(page, campaign: Path, train: Path | None = None) -> None:
    """Fill the upload form with a campaign's config, past campaign (``train`` to replace it) and candidates."""
    if not page.locator("#up-config").is_visible():
        page.locator("#upload-box summary").click()
    page.set_input_files("#up-config", str(campaign))
    page.set_input_files("#up-train", str(train or campaign.parent / "train.csv"))
    page.set_input_files("#up-candidates", str(campaign.parent / "candidates.csv"))
    page.get_by_role("button", name="Upload").click()


def sign_in(page, server, key="rw"):
    resp = page.goto(server.url + "/")
    page.wait_for_selector("body[data-ready=true]")
    page.get_by_label("API key").fill(server.keys[key])
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_selector("body[data-signed-in=true]")
    return resp


def shown(page, selector: str, key: str) -> str:
    return page.locator(f"{selector} dd[data-key='{key}']").inner_text()


def fmt(x: float) -> str:
    """The page's number format for numbers >= 1000 or integers (thousands separators, no decimals)."""
    return f"{x:,.0f}"


def same(text: str, value: float) -> bool:
    """The page's rounding of ``value``: 3 significant digits below 1,000, whole numbers above."""
    x = float(text.replace(",", ""))
    return abs(x - value) <= max(0.5, 0.005 * abs(value)) if abs(value) >= 1000 else abs(x - value) <= 0.005 * abs(value) + 1e-12


@pytest.fixture(scope="module")
def planner(browser, server, campaign, shots):
    """Sign in, upload, train and score through the page: the page and the ids it made."""
    ctx, page = open_page(browser, server)
    resp = sign_in(page, server)
    assert "script-src 'self'" in resp.headers["content-security-policy"]
    assert "planner" in page.title()
    assert "read and write" in page.locator("#who-scopes").inner_text()
    page.screenshot(path=str(shots / "1-campaigns.png"))
    upload(page, campaign)
    page.wait_for_selector("#campaign-panel:not([hidden])")
    assert "3,000 past rows, 1,500 candidates" in page.locator("#campaign-facts").inner_text()
    page.select_option("#train-learner", "pooled")
    page.fill("#train-folds", "2")
    page.get_by_role("button", name="Start training").click()
    page.wait_for_selector("#progress.status-running, #progress.status-queued, #progress.status-done")
    page.wait_for_selector("#whatif-panel:not([hidden])", timeout=JOB_TIMEOUT_MS)
    page.wait_for_selector("#point dd[data-key='budget']")
    assert re.search(r"Scoring .*: done, \d+\.\d s", page.locator("#progress").inner_text())
    with api(server) as c:
        (model,) = c.get("/models").json()
        (scores,) = c.get("/scores").json()
    assert model["status"] == "done" and model["result"]["learner"] == "pooled"
    yield {"ctx": ctx, "page": page, "model": model, "scores": scores}
    ctx.close()


def test_csp_and_no_inline_script(server):
    r = httpx.get(server.url + "/")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    csp = r.headers["content-security-policy"]
    assert "default-src 'none'" in csp and "script-src 'self'" in csp and "unsafe-inline" not in csp
    assert not re.search(r"<script(?![^>]*\bsrc=)[^>]*>", r.text)  # every script is a file
    assert not re.search(r"\son[a-z]+=", r.text) and "style=" not in r.text
    for name in ("app.js", "chart.js", "app.css"):
        a = httpx.get(f"{server.url}/app/{name}")
        assert a.status_code == 200 and a.headers["content-security-policy"] == csp
        assert not re.search(r"https?://(?!www\.w3\.org/2000/svg)", a.text), name  # nothing from another origin
    assert httpx.get(server.url + "/app/../store.py").status_code == 404
    assert httpx.get(server.url + "/app/nope.js").status_code == 404


def test_sign_in_refuses_a_wrong_key_and_keeps_the_key_out_of_urls_and_storage(browser, server):
    ctx, page = open_page(browser, server)
    try:
        page.goto(server.url + "/")
        page.wait_for_selector("body[data-ready=true]")
        page.get_by_label("API key").fill("po_000000000000_wrong")
        page.get_by_role("button", name="Sign in").click()
        expect(page.locator("#signin-error")).to_have_text("Not signed in: invalid API key.")
        assert page.locator("#app").is_hidden()
        sign_in(page, server)
        key = server.keys["rw"]
        assert key not in page.url
        stored = page.evaluate("() => JSON.stringify([Object.entries(localStorage), Object.entries(sessionStorage), "
                               "document.cookie])")
        assert key not in stored
        assert page.get_by_label("API key").input_value() == ""  # the field is emptied
        page.reload()  # the key was in memory only: a reload signs out
        page.wait_for_selector("body[data-ready=true]")
        assert page.locator("#app").is_hidden() and page.locator("#signin-panel").is_visible()
    finally:
        ctx.close()
    assert key not in server.log.read_text()


def test_drag_the_budget_and_compare(planner, server, shots):
    page, scores = planner["page"], planner["scores"]
    slider = page.locator("#budget-slider")
    box = slider.bounding_box()
    y = box["y"] + box["height"] / 2
    page.mouse.move(box["x"] + box["width"] * 0.2, y)
    page.mouse.down()
    for f in (0.3, 0.45, 0.6):  # a real drag: several input events while the button is held
        page.mouse.move(box["x"] + box["width"] * f, y, steps=4)
    page.mouse.up()
    budget = float(slider.input_value())
    page.wait_for_function("b => document.getElementById('curve').dataset.budget === String(b)", arg=budget)
    page.wait_for_function("() => !document.querySelector('#whatif-panel [aria-busy=true]')")
    with api(server, "ro") as c:
        (pt,) = c.post("/plans", json={"scores_id": scores["id"], "budgets": [budget]}).json()["points"]
    top = float(slider.get_attribute("max"))
    assert 0.4 * top < budget < 0.8 * top
    assert shown(page, "#point", "budget") == fmt(budget)
    assert shown(page, "#point", "spend") == fmt(pt["spend"])
    assert same(shown(page, "#point", "incremental conversions"), pt["incremental_conversions"])
    assert same(shown(page, "#point", "marginal gain per unit"), pt["marginal_gain_per_unit"])
    users = page.locator("#point-arms tbody tr").all_inner_texts()
    assert [u.split("\t")[0].strip() for u in users] == list(pt["users_per_arm"])
    assert [int(u.split("\t")[1].replace(",", "")) for u in users] == list(pt["users_per_arm"].values())
    assert all(same(u.split("\t")[2], s) for u, s in zip(users, pt["spend_per_arm"].values()))
    assert sum(pt["spend_per_arm"].values()) == pytest.approx(pt["spend"], rel=1e-9)
    assert page.locator("#curve circle.marker").count() == 1
    # the forecast an allocation at this budget would carry: the corrected point, its 90% interval, the band
    f = pt["forecast"]
    assert f is not None
    text = shown(page, "#point", "forecast conversions (90% interval)")
    m = re.fullmatch(r"(-?[\d,.]+) \((-?[\d,.]+) to (-?[\d,.]+)\)", text)
    assert m, text
    for got, want in zip(m.groups(), [f["incremental_conversions"], *f["interval90"]["incremental_conversions"]]):
        assert same(got, want), (text, f)
    assert page.locator("#curve path.band").count() == 1 and page.locator("#curve path.series").count() == 2
    expect(page.locator("#curve-legend")).to_be_visible()
    if f["warning"]:
        expect(page.locator("#point-warning")).to_have_text(f"Warning: forecast. {f['warning']}")
    else:
        expect(page.locator("#point-warning")).to_be_hidden()
    page.select_option("#metric-select", "roi")  # a ratio: no band
    expect(page.locator("#curve path.band")).to_have_count(0)
    page.select_option("#metric-select", "incremental_conversions")
    # x tick labels: thousands separators, none overlapping
    ticks = page.locator("#curve text.xtick")
    boxes = [ticks.nth(i).bounding_box() for i in range(ticks.count())]
    assert len(boxes) >= 3 and all(a["x"] + a["width"] < b["x"] for a, b in zip(boxes, boxes[1:]))
    labels = ticks.all_text_contents()
    assert top < 1000 or any("," in t for t in labels), labels
    # hover: the tooltip names the point under the mouse
    curve = page.locator("#curve")
    curve.scroll_into_view_if_needed()
    cb = curve.bounding_box()
    curve.hover(position={"x": cb["width"] * 0.5, "y": cb["height"] * 0.5})
    expect(page.locator("#tooltip")).to_have_text(
        re.compile(r"^budget [\d,]+ · conversions .+ · revenue .+ · ROI .+ · forecast conversions .+ \(.+ to .+\)$"))
    expect(page.locator("#curve g.hover")).to_have_attribute("visibility", "visible")
    tb, wb = page.locator("#tooltip").bounding_box(), page.locator(".chart-wrap").bounding_box()
    assert wb["x"] - 1 <= tb["x"] and tb["x"] + tb["width"] <= wb["x"] + wb["width"] + 1  # inside the chart
    page.screenshot(path=str(shots / "2-what-if.png"), full_page=False)
    # side by side: pin this point, move with the keyboard, both columns shown
    page.get_by_role("button", name="Pin this point").click()
    slider.focus()
    page.keyboard.press("End")
    page.wait_for_function("m => document.getElementById('curve').dataset.budget === m", arg=slider.input_value())
    expect(page.locator("#compare")).to_be_visible()
    rows = page.locator("#compare tbody tr").all_inner_texts()
    assert rows[0].split("\t")[1].strip() == fmt(budget) and rows[0].split("\t")[2].strip() == fmt(top)
    # ROI floor: the curve is asked again with the floor, and the answer says it is used (a floor half the ROI this
    # budget reaches: some users clear it)
    half = float(f"{pt['roi'] / 2:.2g}")
    floor = f"{half:g}"  # as the page writes it: under 1,000, at most 3 significant digits
    assert 0 < float(floor) < 1000
    page.fill("#roi-input", floor)
    page.locator("#roi-input").press("Tab")
    page.wait_for_function("f => document.querySelector(\"#point dd[data-key='ROI floor']\")?.textContent === f",
                           arg=floor)
    expect(page.locator("#whatif-error")).to_have_text("")
    # a floor no user reaches: refused with the reason, as 'promo-opt plan' refuses it; no curve or point of the
    # last floor stays on screen as if it answered this one
    page.fill("#roi-input", "1000000")
    page.locator("#roi-input").press("Tab")
    expect(page.locator("#whatif-error")).to_contain_text("is above the best ROI any user x arm reaches")
    expect(page.locator("#whatif-error")).to_contain_text("min_roi 1e+06")  # the planner's floor, held or not
    expect(page.locator("#point dd")).to_have_count(0)
    expect(page.locator("#point-arms tbody tr")).to_have_count(0)
    assert page.locator("#curve > *").count() == 0
    # the browser logs the refused request (a 422) and nothing else: no script error
    assert page.errors and all("status of 422" in e for e in page.errors), page.errors
    page.errors.clear()


def test_create_download_and_check(planner, server, shots, tmp_path):
    page = planner["page"]
    slider = page.locator("#budget-slider")
    slider.fill(str(round(float(slider.get_attribute("max")) * 0.5)))  # fires input
    page.fill("#roi-input", "")
    page.locator("#roi-input").press("Tab")
    page.wait_for_selector("#point dd[data-key='ROI floor']")  # the curve under the campaign's floor again
    expect(page.locator("#whatif-error")).to_have_text("")
    page.wait_for_function("b => document.getElementById('curve').dataset.budget === b", arg=slider.input_value())
    budget = float(slider.input_value())
    page.fill("#cap-pct20", "50")
    page.get_by_role("button", name="Create targeting list").click()
    page.wait_for_selector("#alloc-result:not([hidden])", timeout=JOB_TIMEOUT_MS)
    with api(server, "ro") as c:
        (alloc,) = c.get("/allocations").json()
    s = alloc["result"]
    assert alloc["params"]["overrides"]["constraints.budget"] == budget
    assert s["users_per_arm"]["pct20"] <= 50
    assert shown(page, "#certificate", "gap to the bound") == f"{s['gap']:.2e}".replace("e-0", "e-").replace("e+0", "e+")
    assert shown(page, "#forecast", "expected spend") == fmt(s["expected"]["spend"])
    assert shown(page, "#forecast", "holdout (kept untreated)") == f"{s['holdout_size']:,} of 1,500 users"
    lo, hi = shown(page, "#forecast", "conversions, 90% interval").split(" to ")
    assert same(lo, s["forecast"]["interval90"]["incremental_conversions"][0])
    assert same(hi, s["forecast"]["interval90"]["incremental_conversions"][1])
    # the page shows the warnings the summary carries (the CLI's first lines), no more, no fewer
    said = [f"Warning: {what}. {w}" for what, w in (("budget", (s.get("budget_use") or {}).get("warning")),
                                                     ("forecast", s["forecast"].get("warning"))) if w]
    assert page.locator("#alloc-warnings p").all_inner_texts() == said
    page.screenshot(path=str(shots / "3-targeting-list.png"), full_page=True)
    with page.expect_download() as d:
        page.get_by_role("button", name="CSV").click()
    path = tmp_path / d.value.suggested_filename
    d.value.save_as(path)
    assert path.name == f"targets-{alloc['id']}.csv"
    got = pd.read_csv(path)
    with api(server, "ro") as c:
        ref = pd.read_csv(io.BytesIO(c.get(f"/allocations/{alloc['id']}/targets", params={"format": "csv"}).content))
    pd.testing.assert_frame_equal(got, ref)
    assert len(got) == 1500 and (got["arm"] == "pct20").sum() <= 50
    with page.expect_download() as d:
        page.get_by_role("button", name="Parquet").click()
    d.value.save_as(tmp_path / "t.parquet")
    assert len(pd.read_parquet(tmp_path / "t.parquet")) == 1500
    # push to a campaign tool (a webhook on loopback that fails the first try of batch 1): the delivery log
    receiver = Receiver(fail_batches=(1,))
    try:
        page.fill("#push-url", receiver.url)
        page.fill("#push-batch", "100")
        page.get_by_role("button", name="Push").click()
        page.wait_for_selector("#deliveries:not([hidden])", timeout=JOB_TIMEOUT_MS)
        log = [r.split("\t") for r in page.locator("#deliveries tbody tr").all_inner_texts()]
    finally:
        receiver.close()
    rows = [(x[0].strip(), x[1].strip(), x[2].strip()) for x in log]
    assert rows[:2] == [("0", "1", "200"), ("1", "1", "503")] and ("1", "2", "200") in rows, rows
    treated = int((got["arm"] != "control").sum())
    assert {r[0] for r in rows if r[2] == "200"} == {str(b) for b in range(-(-treated // 100))}
    assert sum(len(body["rows"]) for _, body in receiver.received) == treated
    assert "done" in page.locator("#push-progress").inner_text()
    # the model's checks: the learner comparison of the chosen learner and its Qini curves
    assert page.locator("#check-panel").is_visible()
    assert "pooled" in page.locator("#learners tbody").inner_text()
    assert page.locator("#qini path.series").count() >= 2
    # off-policy: the model's own policy on held-out folds (its metrics), then this list against other strategies
    metrics = api(server, "ro").get(f"/models/{planner['model']['id']}/metrics").json()
    fc = metrics["forecast_correction"]
    assert fc["applied"]
    held = {r.split("\t")[0]: r.split("\t") for r in page.locator("#heldout tbody tr").all_inner_texts()}
    assert same(held["incremental conversions"][2], fc["realized"]["incremental_conversions"])
    assert same(held["spend"][1], fc["expected"]["spend"])
    page.get_by_role("button", name="Evaluate the targeting list").click()
    page.wait_for_selector("#policies:not([hidden])", timeout=JOB_TIMEOUT_MS)
    with api(server, "ro") as c:
        (ev,) = [j for j in c.get("/analyses").json() if j["params"]["analysis"] == "policies"]
    assert ev["parent_id"] == alloc["id"] and ev["result"]["budget"] == budget
    rows = [r.split("\t") for r in page.locator("#policies tbody tr").all_inner_texts()]
    assert [r[0] for r in rows] == [row["policy"] for row in ev["result"]["rows"]]
    opt = ev["result"]["rows"][0]
    assert rows[0][0] == "optimized" and same(rows[0][2], opt["incremental_conversions"])
    assert rows[0][3].strip() != "–" and "to" in rows[0][3]
    # the campaign's reports: effect is available (a past campaign), ltv and drivers say what is missing
    avail = page.locator("#analysis-availability li").all_inner_texts()
    assert avail[0].startswith("effect: available")
    assert avail[1].startswith("ltv: the campaign's config has no ltv: section") and avail[1].endswith("(not available)")
    page.select_option("#analysis-select", "effect")
    page.select_option("#effect-method", "ipw")
    page.get_by_role("button", name="Run report").click()
    page.wait_for_selector("#analysis-result[data-analysis=effect]:not([hidden])", timeout=JOB_TIMEOUT_MS)
    with api(server, "ro") as c:
        (eff,) = [j for j in c.get("/analyses").json() if j["params"]["analysis"] == "effect"]
    assert eff["params"]["method"] == "ipw" and eff["status"] == "done"
    figures = {r.split("\t")[0]: r.split("\t") for r in page.locator("#analysis-figures tbody tr").all_inner_texts()}
    assert set(figures) == set(eff["result"]["effects"]) == {"pct5", "pct10", "pct20"}
    for arm, e in eff["result"]["effects"].items():
        assert same(figures[arm][1], e["estimate"]) and figures[arm][2].count("to") == 1
    assert "adjusted for every feature" in page.locator("#analysis-summary").inner_text()
    page.locator("#check-panel").screenshot(path=str(shots / "6-check.png"))
    with planner["ctx"].expect_page() as report_page:
        page.get_by_role("button", name="Open report.html").click()
    report = report_page.value
    report.wait_for_load_state()
    assert "ipw" in report.content() and report.locator("img").count() >= 1
    report.close()
    assert not page.errors, page.errors


def test_a_list_that_leaves_the_budget_unspent_says_so_on_top(planner, server, shots):
    """An ROI floor that binds, and a budget typed above where the curve under it stops paying: the
    summary's warnings (the CLI's first lines) are shown above the list, in the summary's words."""
    page, scores = planner["page"], planner["scores"]
    slider = page.locator("#budget-slider")
    top = float(slider.get_attribute("max"))
    with api(server, "ro") as c:
        pts = c.post("/plans", json={"scores_id": scores["id"], "n_points": 80}).json()["points"]
        best = max(p["roi"] for p in pts if p["roi"] is not None and p["spend"] > 0)
        # the floor is held on the forecast (the held-out ratios move it): ask the curve which floor binds,
        # bisecting between a floor that spends the budget and one that spends nothing
        def spend(f):
            r = c.post("/plans", json={"scores_id": scores["id"], "budgets": [top], "min_roi": f})
            return r.json()["points"][0]["spend"] if r.status_code == 200 else 0.0
        lo, hi = best, best
        while spend(hi) > 0:
            lo, hi = hi, 2 * hi
        for _ in range(30):
            floor = f"{(lo + hi) / 2:.3g}"  # as the page shows it
            got = spend(float(floor))
            if 0 < got < 0.45 * top:
                break
            lo, hi = (float(floor), hi) if got > 0 else (lo, float(floor))
        else:
            pytest.fail(f"no ROI floor leaves the budget {top} partly unspent (best expected ROI {best})")
    page.fill("#roi-input", floor)
    page.locator("#roi-input").press("Tab")
    page.wait_for_function("f => document.querySelector(\"#point dd[data-key='ROI floor']\").textContent === f", arg=floor)
    # under the floor the curve (and the slider) stops where more stops paying; the planner types the budget
    budget = f"{top:.2f}"
    page.fill("#budget-input", budget)
    page.locator("#budget-input").press("Tab")
    page.wait_for_function("b => document.getElementById('curve').dataset.budget === String(Number(b))", arg=budget)
    with api(server, "ro") as c:
        before = len(c.get("/allocations").json())
    page.get_by_role("button", name="Create targeting list").click()
    page.wait_for_function("() => /status-(done|failed)/.test(document.getElementById('alloc-progress').className) "
                           "&& !document.getElementById('allocate-submit').disabled", timeout=JOB_TIMEOUT_MS)
    with api(server, "ro") as c:
        allocs = c.get("/allocations").json()
    assert len(allocs) == before + 1, page.locator("#alloc-progress").inner_text()
    alloc = max(allocs, key=lambda a: a["created_at"])
    assert alloc["status"] == "done", (alloc.get("error"), page.locator("#alloc-progress").inner_text())
    s = alloc["result"]
    assert s["min_roi"] == float(floor)
    assert s["budget_use"]["limit"] == "roi_floor", s["budget_use"]  # the precondition: the floor binds
    said = [f"Warning: {what}. {w}" for what, w in (("budget", s["budget_use"].get("warning")),
                                                     ("forecast", s["forecast"].get("warning"))) if w]
    assert s["budget"] == pytest.approx(top, abs=0.01)
    assert said and said[0].startswith("Warning: budget. the policy expects to spend"), s["budget_use"]
    assert page.locator("#alloc-warnings p").all_inner_texts() == said
    expect(page.locator("#deliveries")).to_be_hidden()  # the previous list's pushes are not this one's
    page.locator("#decide-panel").screenshot(path=str(shots / "3b-budget-warning.png"))
    assert not page.errors, page.errors


def test_read_only_key_sees_everything_but_is_refused_jobs(planner, browser, server, shots):
    ctx, page = open_page(browser, server)
    try:
        sign_in(page, server, "ro")
        assert "read only" in page.locator("#who-scopes").inner_text()
        page.get_by_role("button", name=re.compile("^Open campaign")).first.click()
        page.wait_for_selector("#point dd[data-key='budget']")  # plans are reads: the what-if works
        page.get_by_role("button", name="Start training").click()
        page.wait_for_selector("#progress.status-failed")
        assert page.locator("#progress").inner_text() == \
            "Refused: this API key lacks the 'write' scope. Ask for a key with write access."
        page.get_by_role("button", name="Create targeting list").click()
        page.wait_for_selector("#alloc-progress.status-failed")
        assert "lacks the 'write' scope" in page.locator("#alloc-progress").inner_text()
        page.get_by_role("button", name="Run report").click()
        page.wait_for_selector("#analysis-progress.status-failed")
        assert page.locator("#analysis-progress").inner_text() == \
            "Refused: this API key lacks the 'write' scope. Ask for a key with write access."
        page.screenshot(path=str(shots / "4-read-only-refused.png"))
    finally:
        ctx.close()
    with api(server, "ro") as c:
        assert len(c.get("/models").json()) == 1  # nothing was started


def test_the_what_if_names_the_break_even_its_curve_holds(planner, browser, server):
    """Under the objective net_revenue the curve holds the break-even the model's held-out twin showed pays
    (``/plans``' ``allocated_cost_weight``); the point's facts name it as the list's do. This campaign's objective
    is conversions, so the service names none and the page shows no row; a plan whose weight moved (the reply
    rewritten in the browser: a small campaign rarely moves it) is shown in the list's words."""
    key = "break-even: incremental revenue over cost held at"
    with api(server, "ro") as c:
        plan = c.post("/plans", json={"scores_id": planner["scores"]["id"], "n_points": 5}).json()
    assert plan["objective"] != "net_revenue" and plan["allocated_cost_weight"] is None
    assert planner["page"].locator(f"#point dd[data-key='{key}']").count() == 0

    def moved(route):
        reply = route.fetch()
        route.fulfill(response=reply, json={**reply.json(), "allocated_cost_weight": 0.84})

    ctx, page = open_page(browser, server)
    try:
        page.route("**/plans", moved)
        sign_in(page, server, "ro")
        page.get_by_role("button", name=re.compile("^Open campaign")).first.click()
        page.wait_for_selector("#point dd[data-key='budget']")
        assert shown(page, "#point", key) == "0.84"
        assert not page.errors, page.errors
    finally:
        ctx.close()


def test_the_list_names_the_break_even_it_holds_by_the_clis_rule(planner, browser, server):
    """A list's certificate names the break-even its summary holds (``allocated_cost_weight``) where it moved off 1,
    by the rule the CLI and the report use (``pipeline.held_moved``): a weight within 1e-9 of 1 is 1, unnamed. The
    list's reply is rewritten in the browser (this campaign's objective names no weight)."""
    key = "break-even: incremental revenue over cost held at"
    def holding(weight):
        def held(route):
            reply = route.fetch()
            body = reply.json()
            if body.get("status") == "done":
                body = {**body, "result": {**body["result"], "allocated_cost_weight": weight}}
            route.fulfill(response=reply, json=body)
        return held

    for weight, want in ((0.84, "0.84"), (1 + 1e-12, None)):
        ctx, page = open_page(browser, server)
        try:
            page.route("**/allocations/*", holding(weight))
            sign_in(page, server)
            page.get_by_role("button", name=re.compile("^Open campaign")).first.click()
            page.wait_for_selector("#point dd[data-key='budget']")
            page.get_by_role("button", name="Create targeting list").click()
            page.wait_for_selector("#alloc-result:not([hidden])", timeout=JOB_TIMEOUT_MS)
            assert shown(page, "#certificate", "solver")  # the certificate is drawn
            if want is None:
                assert page.locator(f"#certificate dd[data-key='{key}']").count() == 0
            else:
                assert shown(page, "#certificate", key) == want
            assert not page.errors, page.errors
        finally:
            ctx.close()


def test_bad_upload_message_is_shown_next_to_its_field(browser, server, campaign, tmp_path, shots):
    train = pd.read_csv(campaign.parent / "train.csv").drop(columns=["converted"])
    bad = tmp_path / "train-no-outcome.csv"
    train.to_csv(bad, index=False)
    ctx, page = open_page(browser, server)
    try:
        sign_in(page, server)
        upload(page, campaign, train=bad)
        page.wait_for_selector("#up-train-error:not(:empty)")
        msg = page.locator("#up-train-error").inner_text()
        with api(server) as c:
            r = c.post("/campaigns", files={"config": ("c.yaml", campaign.read_text()),
                                            "train": (bad.name, bad.read_bytes()),
                                            "candidates": ("k.csv", (campaign.parent / "candidates.csv").read_bytes())})
        assert r.status_code == 422 and r.json()["field"] == "train"
        assert msg == r.json()["detail"] and "converted" in msg
        assert page.locator("#up-train").get_attribute("aria-invalid") == "true"
        assert page.locator("#up-config-error").inner_text() == ""
        page.screenshot(path=str(shots / "5-bad-upload.png"))
        # a config that is not YAML: its message goes next to the config field
        notyaml = tmp_path / "broken.yaml"
        notyaml.write_text("arms: [unclosed\n")
        page.set_input_files("#up-config", str(notyaml))
        page.get_by_role("button", name="Upload").click()
        page.wait_for_selector("#up-config-error:not(:empty)")
        assert page.locator("#up-config-error").inner_text().startswith("config: not valid YAML")
    finally:
        ctx.close()


@pytest.mark.skipif(not AXE.exists(), reason="tests/assets/axe-core/axe.min.js missing")
def test_no_serious_accessibility_violations(planner, browser, server):
    """axe-core (shipped as a test asset, injected; CSP bypassed for the injection only) on the signed-out page
    and on the full signed-in page with a targeting list shown."""
    page = planner["page"]
    ctx2, out = open_page(browser, server, bypass_csp=True)
    try:
        out.goto(server.url + "/")
        out.wait_for_selector("body[data-ready=true]")
        results = [axe(out)]
    finally:
        ctx2.close()
    ctx3, page3 = open_page(browser, server, bypass_csp=True)
    try:
        sign_in(page3, server)
        page3.get_by_role("button", name=re.compile("^Open campaign")).first.click()
        page3.wait_for_selector("#point dd[data-key='budget']")
        page3.wait_for_selector("#check-panel:not([hidden])")
        page3.wait_for_selector("#model-check:not([hidden])")
        page3.get_by_role("button", name=re.compile("^Show effect")).first.click()  # a report's figures
        page3.wait_for_selector("#analysis-result:not([hidden])")
        results.append(axe(page3))
    finally:
        ctx3.close()
    assert page is not None
    # the check can fail: an input without a label is reported
    ctx4, bad = open_page(browser, server, bypass_csp=True)
    try:
        bad.goto(server.url + "/")
        bad.wait_for_selector("body[data-ready=true]")
        bad.evaluate("() => document.querySelector('main').appendChild(document.createElement('input'))")
        assert "label" in [v["id"] for v in axe(bad) if v["impact"] in ("serious", "critical")]
    finally:
        ctx4.close()
    for violations in results:
        serious = [(v["id"], v["impact"], v["help"], [n["target"] for n in v["nodes"]][:3])
                   for v in violations if v["impact"] in ("serious", "critical")]
        assert not serious, serious


def axe(page) -> list[dict]:
    page.add_script_tag(path=str(AXE))
    return page.evaluate("async () => (await axe.run(document, {resultTypes: ['violations']})).violations")


def test_a_campaign_whose_candidates_drift_says_so_above_the_curve_and_the_list(planner, browser, server, tmp_path,
                                                                                 shots):
    """The drift check's warning (the CLI's first line) reaches the web app: above the what-if curve, first
    among a targeting list's warnings, and in the check panel with its figures; a campaign without drift shows
    none. Last in this module: it adds a campaign, which the earlier tests do not expect in their lists."""
    travel = planner["page"]
    expect(travel.locator("#drift-warning")).to_be_hidden()
    expect(travel.locator("#curve-empty")).to_be_hidden()
    travel.wait_for_selector("#model-check:not([hidden])")
    assert shown(travel, "#drift", "candidates differ") == "no"
    campaign = load_world("subscription_drift").write_campaign(tmp_path / "drift", seed=7, n_train=3000,
                                                               n_candidates=1500)
    ctx, page = open_page(browser, server)
    try:
        sign_in(page, server)
        upload(page, campaign)
        page.wait_for_selector("#campaign-panel:not([hidden])")
        page.select_option("#train-learner", "pooled")
        page.fill("#train-folds", "2")
        page.get_by_role("button", name="Start training").click()
        page.wait_for_selector("#whatif-panel:not([hidden])", timeout=JOB_TIMEOUT_MS)
        page.wait_for_selector("#point dd[data-key='budget']")
        with api(server, "ro") as c:
            model = max(c.get("/models").json(), key=lambda m: m["created_at"])
            drift = c.get(f"/models/{model['id']}/metrics").json()["drift"]
        assert drift["shifted"] and drift["message"]  # the precondition: the check flags this campaign
        said = f"Warning: drift. {drift['message']}"
        expect(page.locator("#drift-warning")).to_have_text(said)
        with api(server, "ro") as c:
            scores = max(c.get("/scores").json(), key=lambda j: j["created_at"])
            plan = c.post("/plans", json={"scores_id": scores["id"], "n_points": 5}).json()
        if plan["points"][-1]["budget"] == 0:  # the model sees no user worth a promotion: the page says why
            expect(page.locator("#curve-empty")).to_contain_text(f"No user gains under the objective '{plan['objective']}'")
        else:
            expect(page.locator("#curve-empty")).to_be_hidden()
        assert shown(page, "#drift", "candidates differ") == "yes"
        assert shown(page, "#drift", "most different features") == ", ".join(drift["top_features"])
        assert shown(page, "#drift", "domain classifier AUC").startswith(f"{drift['auc']:.3g}")
        page.get_by_role("button", name="Create targeting list").click()
        page.wait_for_function("() => /status-(done|failed)/.test(document.getElementById('alloc-progress').className)",
                               timeout=JOB_TIMEOUT_MS)
        expect(page.locator("#alloc-warnings p").first).to_have_text(said)
        page.locator("#whatif-panel").screenshot(path=str(shots / "2b-drift-warning.png"))
        assert not page.errors, page.errors
    finally:
        ctx.close()
