"""The web app's slider round trip: budget input -> /plans answer -> chart redrawn and painted.

A real ``promo-opt serve`` on loopback with N scored candidates (default 1M: a simulated travel
campaign uploaded, a pooled model trained on 20k rows, the candidates scored through the API), the
app open in headless Chromium (Debian's, as in the tests), signed in, the campaign opened. Then R
slider moves to random budgets, one after the other; each is timed in the page from the input event
to the animation frame after the chart shows that budget (``performance.now``). With ``--min-roi``
the same with an ROI floor (points breaking it are re-solved by the server).

    nice -n 10 .venv/bin/python benchmarks/bench_web_slider.py                 # 1M candidates
    .venv/bin/python benchmarks/bench_web_slider.py --candidates 100000 --moves 100   # quick

Writes reports/bench_web_slider.json (and prints it).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import shutil
import sys
import tempfile
import time
from pathlib import Path

import httpx
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from promo_opt.simulation import load_world  # noqa: E402
from tests.service_harness import started_with_key, wait_job  # noqa: E402

MOVE = """async (v) => {
  const s = document.getElementById("budget-slider"), c = document.getElementById("curve");
  const t0 = performance.now();
  s.value = String(v);
  s.dispatchEvent(new Event("input", { bubbles: true }));
  await new Promise((res) => {
    const check = () => (Number(c.dataset.budget) === Number(s.value) ? res() : requestAnimationFrame(check));
    check();
  });
  await new Promise((res) => requestAnimationFrame(() => res()));  // the frame that paints it
  const solved = document.querySelector("#point dd[data-key='re-solved under the floor']");
  return [performance.now() - t0, Number(c.dataset.roundtripMs), solved ? solved.textContent === "yes" : false];
}"""


def pct(x, q):
    return float(np.percentile(np.asarray(x), q))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--candidates", type=int, default=1_000_000)
    ap.add_argument("--train", type=int, default=20_000)
    ap.add_argument("--moves", type=int, default=300)
    ap.add_argument("--min-roi", type=float, default=None, help="also measure with this ROI floor")
    ap.add_argument("--chromium", default=os.environ.get("PROMO_OPT_CHROMIUM") or shutil.which("chromium"))
    ap.add_argument("--out", type=Path, default=ROOT / "reports" / "bench_web_slider.json")
    args = ap.parse_args()
    from playwright.sync_api import sync_playwright

    res: dict = {"command": "python " + " ".join(sys.argv), "candidates": args.candidates, "moves": args.moves,
                 "machine": {"python": platform.python_version(), "cpus": os.cpu_count(),
                             "load_before": os.getloadavg()}, "seconds": {}}
    with tempfile.TemporaryDirectory(prefix="promo-opt-slider-") as tmp:
        tmp = Path(tmp)
        t0 = time.perf_counter()
        cfg = load_world("travel").write_campaign(tmp / "c", seed=11, n_train=args.train, n_candidates=args.candidates)
        res["seconds"]["simulate"] = time.perf_counter() - t0
        server, key = started_with_key(tmp)
        try:
            with httpx.Client(base_url=server.url, headers={"X-API-Key": key}, timeout=1800) as c:
                t0 = time.perf_counter()
                with open(cfg.parent / "train.csv", "rb") as tr, open(cfg.parent / "candidates.csv", "rb") as ca:
                    r = c.post("/campaigns", files={"config": ("c.yaml", cfg.read_text()), "train": ("t.csv", tr),
                                                    "candidates": ("k.csv", ca)})
                assert r.status_code == 201, r.text
                m = wait_job(c, "/models/" + c.post("/models", json={"campaign_id": r.json()["id"], "model": {
                    "learner": "pooled", "folds": 3}}).json()["id"], timeout=3600)
                s = wait_job(c, "/scores/" + c.post("/scores", json={"model_id": m["id"]}).json()["id"], timeout=3600)
                assert s["status"] == "done", s["error"]
                res["seconds"]["upload_train_score"] = time.perf_counter() - t0
            with sync_playwright() as p:
                browser = p.chromium.launch(executable_path=args.chromium, args=[
                    "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                    "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-dev-shm-usage"])
                page = browser.new_page(viewport={"width": 1200, "height": 900})
                page.goto(server.url + "/")
                page.wait_for_selector("body[data-ready=true]")
                page.get_by_label("API key").fill(key)
                page.get_by_role("button", name="Sign in").click()
                page.wait_for_selector("body[data-signed-in=true]")
                t0 = time.perf_counter()
                page.get_by_role("button", name="Open campaign", exact=False).first.click()
                page.wait_for_selector("#point dd[data-key='budget']", timeout=600_000)
                res["seconds"]["open_campaign_first_curve"] = time.perf_counter() - t0
                for label, floor in (("no_floor", None), ("roi_floor", args.min_roi)):
                    if label == "roi_floor":
                        if floor is None:
                            break
                        page.fill("#roi-input", str(floor))
                        page.locator("#roi-input").press("Tab")
                        page.wait_for_function(
                            "f => document.querySelector(\"#point dd[data-key='ROI floor']\").textContent === f",
                            arg=str(floor), timeout=600_000)
                    top = float(page.locator("#budget-slider").get_attribute("max"))
                    step = float(page.locator("#budget-slider").get_attribute("step"))
                    rng = random.Random(1)
                    page.evaluate(MOVE, round(top / 2 / step) * step)  # warm
                    total, request, resolved = [], [], 0
                    for _ in range(args.moves):
                        ms, req, solved = page.evaluate(MOVE, round(rng.uniform(0, top) / step) * step)
                        total.append(ms)
                        request.append(req)
                        resolved += bool(solved)
                    # moves whose point broke the floor on the budget-only path and was re-solved under it
                    res[label] = {"min_roi": floor, "moves_resolved_under_the_floor": resolved, "input_to_painted_ms": {
                        "p50": pct(total, 50), "p95": pct(total, 95), "p99": pct(total, 99), "max": max(total)},
                        "input_to_drawn_ms_in_app": {"p50": pct(request, 50), "p95": pct(request, 95)}}
                browser.close()
        finally:
            server.stop()
    res["machine"]["load_after"] = os.getloadavg()
    text = json.dumps(res, indent=2)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    tmp_out = args.out.with_suffix(".json.tmp")
    tmp_out.write_text(text + "\n")
    tmp_out.replace(args.out)
    print(text)


if __name__ == "__main__":
    main()
