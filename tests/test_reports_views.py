"""The default `onestep report` on a smoke-like store (tests/reports_store.py): leaderboard with
verdicts, every paper table with reproduced cells or the command that runs them, the banner,
exports (CSV, JSON, LaTeX) of every table, the figure cache, the analyses hook, and links that
always land somewhere. Expected numbers are the ones reports_store.py states."""
from __future__ import annotations

import base64
import csv
import io
import json
import re
import sys
import types

import pytest
from PIL import Image

from onestep.benchmarks.cli import main
from onestep.benchmarks.paper_tables import load
from onestep.reports.verdicts import BETTER, REPRODUCED, WORSE, RuleError, parse_rule, verdict


@pytest.fixture(scope="module")
def smoke_store(tmp_path_factory):
    from reports_store import make_store

    return make_store(tmp_path_factory.mktemp("views") / "store")


@pytest.fixture(scope="module")
def report_dir(smoke_store):
    out = smoke_store.root / "report"
    assert main(["report", "--store", str(smoke_store.root), "--out", str(out)]) == 0
    return out


def _csv(path):
    return list(csv.DictReader(io.StringIO(path.read_text())))


def test_verdict_rules_by_hand():
    metric, rule = parse_rule("fid=5%,0.1")
    assert metric == "fid" and rule.better == "lower" and (rule.rel, rule.abs) == (0.05, 0.1)
    # published 1.66: tolerance max(0.1, 0.083) = 0.1
    assert verdict(1.75, 1.66, rule) == REPRODUCED and verdict(1.77, 1.66, rule) == WORSE
    assert verdict(1.55, 1.66, rule) == BETTER
    # published 20: tolerance max(0.1, 1.0) = 1.0
    assert verdict(20.9, 20.0, rule) == REPRODUCED and verdict(21.1, 20.0, rule) == WORSE
    _, isc = parse_rule("isc=1%")
    assert isc.better == "higher" and verdict(10.2, 10.0, isc) == BETTER
    assert parse_rule("kid=0.001:lower")[1] == type(rule)("lower", rel=0.0, abs=0.001)
    for bad in ("fid", "fid=abc", "newmetric=1%"):
        with pytest.raises(RuleError):
            parse_rule(bad)


def test_leaderboard_rows_verdicts_and_protocol(report_dir):
    rows = _csv(report_dir / "tables" / "leaderboard-cifar10-32-False-fid.csv")
    by_run = {r["run"].split(" ")[0]: r for r in rows}
    assert list(by_run) == ["GDD-freeze[freeze=conv]", "GDD", "GDD-I"]  # best (lowest) FID first
    assert by_run["GDD"]["ours"].startswith("1.7") and by_run["GDD"]["published"].startswith("1.66")
    assert by_run["GDD"]["verdict"].startswith("reproduced")  # |1.70 - 1.66| <= 0.1
    assert by_run["GDD-I"]["verdict"].startswith("worse than published")  # 2.40 vs 1.54
    assert by_run["GDD-freeze[freeze=conv]"]["published"].startswith("1.54")  # Table 2, conv frozen
    assert "n 50,000 vs 50,000" in by_run["GDD"]["protocol (ours vs paper)"]
    assert by_run["GDD"]["training images"] == "5M" and by_run["GDD"]["NFE"].startswith("1")
    digits = _csv(report_dir / "tables" / "leaderboard-digits-8-True-fd_digits.csv")
    assert [r["method"] for r in digits] == ["edm", "gdd", "d2o", "cd"]  # cd is UNTRAINED: last
    assert "[UNTRAINED]" in digits[-1]["ours"]
    assert [("same algorithm" in r["note"]) for r in digits] == [False, False, True, False]


def test_cli_verdict_rule_changes_the_verdict(smoke_store, tmp_path):
    out = tmp_path / "strict"
    assert main(["report", "--store", str(smoke_store.root), "--out", str(out), "--verdict", "fid=1%,0.01"]) == 0
    rows = _csv(out / "tables" / "leaderboard-cifar10-32-False-fid.csv")
    gdd = [r for r in rows if r["run"].startswith("GDD ")][0]
    assert gdd["verdict"].startswith("worse than published")  # 1.70 vs 1.66 > max(0.01, 0.0166)
    assert main(["report", "--store", str(smoke_store.root), "--out", str(out), "--verdict", "fid=lots"]) == 2


def test_every_paper_table_is_shown_with_ours_or_the_command(report_dir):
    data = load()
    html = (report_dir / "index.html").read_text()
    for tref, table in data.tables.items():
        stem = f"paper-{table.paper}-{re.sub(r'[^A-Za-z0-9_.-]+', '_', table.table)}"
        assert (report_dir / "tables" / f"{stem}.csv").exists(), tref
        assert f'id="{stem}"' in html
    for p in data.papers.values():
        assert p.title in html  # papers named by title
    assert "000 GDD" not in html
    freezing = {r["method / row"]: r for r in _csv(report_dir / "tables" / "paper-gdd-2.csv")}
    assert freezing["GDD-I: freeze-conv"]["FID (ours)"].startswith("1.58")
    assert "[reproduced]" in freezing["GDD-I: freeze-conv"]["FID (ours)"]
    assert "onestep run gdd_freezing" in freezing["GDD-I: tune-all"]["FID (ours)"]
    t3a = _csv(report_dir / "tables" / "paper-gdd-3a.csv")
    gdd = [r for r in t3a if r["method / row"] == "GDD" and "uncond" in r["dataset"]][0]
    assert gdd["FID (paper)"] == "1.66" and gdd["FID (ours)"].startswith("1.7")
    cond = [r for r in t3a if r["method / row"] == "GDD" and " cond" in r["dataset"]][0]
    assert "onestep run gdd_cifar10_cond" in cond["FID (ours)"]  # the suite that would reproduce it
    cd = [r for r in t3a if r["method / row"] == "CD"][0]
    assert cd["FID (ours)"].startswith("not run") and "ref gdd/3a/CD" in cd["FID (ours)"]


def test_latex_and_json_exports(report_dir):
    tex = (report_dir / "tables" / "paper-sida-1.tex").read_text()
    assert "\\toprule" in tex and "\\midrule" in tex and "\\bottomrule" in tex
    assert "1.499 $\\pm$ 0.012" in tex and "$\\alpha$=1.0" in tex
    assert "ref: sida/1/SiD2A (α=1.0)" not in tex  # escaped, not raw
    doc = json.loads((report_dir / "tables" / "paper-sida-1.json").read_text())
    assert doc["columns"][0] == "method / row" and any(r["FID (paper)"].startswith("1.499 ± 0.012") for r in doc["rows"])


def test_banner_only_when_numbers_are_not_paper_results(report_dir, tmp_path):
    html = (report_dir / "index.html").read_text()
    assert html.count('class="banner"') == 2 and "UNTRAINED" in html and "digits default" in html
    from reports_store import make_store

    store = make_store(tmp_path / "cifar_only", suites=("gdd_cifar10",))
    assert main(["report", "--store", str(store.root)]) == 0
    assert 'class="banner"' not in (store.root / "report" / "index.html").read_text()


def test_links_land_and_images_are_embedded_and_enlarged(report_dir):
    html = (report_dir / "index.html").read_text()
    ids = set(re.findall(r'id="([^"]+)"', html))
    targets = set(re.findall(r'href="#([^"]+)"', html))
    assert targets and targets <= ids, sorted(targets - ids)[:5]  # no link of a pending run points nowhere
    grids = re.findall(r'<img src="data:image/png;base64,([^"]+)" alt="samples of', html)
    assert grids
    with Image.open(io.BytesIO(base64.b64decode(grids[0]))) as im:
        assert im.width >= 512  # the 64-px grid of 8x8 digits, enlarged 8x
    assert "NFE vs FID" in html and "Freezing ablation" in html


def test_rerender_draws_only_what_changed(smoke_store, tmp_path):
    import shutil

    from onestep.benchmarks.paper_tables import load as load_pt
    from onestep.reports import build_report

    root = tmp_path / "store"
    shutil.copytree(smoke_store.root / "runs", root / "runs")
    out = tmp_path / "r"
    first = build_report(root, out, paper_tables=load_pt())
    again = build_report(root, out, paper_tables=load_pt())
    assert first.cache_misses > 0 and again.cache_misses == 0 and again.cache_hits == first.cache_misses + first.cache_hits
    assert again.html.read_text().split("generated ", 1)[1][25:] == first.html.read_text().split("generated ", 1)[1][25:]
    series = next((root / "runs").glob("edm-*")) / "metrics.jsonl"
    series.write_text(series.read_text() + json.dumps({"kind": "periodic", "kimg": 99.0, "n": 250, "fd_digits": 1.0}) + "\n")
    changed = build_report(root, out, paper_tables=load_pt())
    assert changed.cache_misses == 1  # the smoke suite's convergence plot, nothing else


def test_analysis_sections_hook(smoke_store, tmp_path, monkeypatch):
    png = tmp_path / "fig.png"
    Image.new("RGB", (20, 10), "red").save(png)
    table = tmp_path / "freq.csv"
    table.write_text("block,share\nenc1,0.25\n")
    mod = types.ModuleType("onestep.reports.analysis_sections")
    mod.analysis_sections = lambda store_dir: [{"title": "Block frequency <x>", "summary": "what it shows",
                                                "figures": [str(png)], "tables": [str(table)], "run_dir": str(store_dir)}]
    monkeypatch.setitem(sys.modules, "onestep.reports.analysis_sections", mod)
    import onestep.reports as pkg

    monkeypatch.setattr(pkg, "analysis_sections", mod, raising=False)
    from onestep.reports import build_report

    res = build_report(smoke_store.root, tmp_path / "r")
    html = res.html.read_text()
    assert 'id="analyses"' in html and "Block frequency &lt;x&gt;" in html and "enc1" in html
    assert html.count("data:image/png") >= 1 and (tmp_path / "r" / "tables" / "analysis-Block_frequency_x-freq.csv").exists()
