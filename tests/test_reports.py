"""`onestep report`: leaderboard HTML/CSV/JSON from a store written by the real runner and store
(complete, failed, interrupted and not-started runs; untrained-flagged metrics; a suite with a
`published:` section), checked against values the test states itself."""
from __future__ import annotations

import csv
import io
import json
import math
import subprocess
import sys
import textwrap
from html.parser import HTMLParser
from pathlib import Path

import pytest
from PIL import Image

from onestep.benchmarks.runner import TrainResult, execute_run
from onestep.benchmarks.store import ResultsStore
from onestep.benchmarks.suites import expand_runs, load_suite, published_entries
from onestep.reports import ReportError, build_report, read_store
from onestep.reports.leaderboard import metric_display_name

# What the stand-in evaluation returns per run label: the expected numbers of every assertion.
FINAL = {
    "GDD": {"fid": 3.25, "isc": 9.5},
    "GDD-I": {"fid": 4.5, "isc": 9.0},
    "no-aug[r1_gamma=0.001]": {"fid": 2.5, "isc": 9.75},
    "edm": {"fd_digits": 42.0},
}
UNTRAINED_LABELS = {"GDD-I"}  # evaluated with random feature-network weights
FAILING = {"no-aug[r1_gamma=1e-05]"}
INTERRUPTED = {"D2O"}  # killed after two periodic evaluations
NOT_STARTED = {"D2O-F"}
N_FINAL, N_PERIODIC = 200, 100
DISPLAY = {"fid": "FID", "isc": "IS", "fd_digits": "FD-digits"}

TOY_SUITE = """
name: toy
description: a small paper-like suite for the report tests
dataset: {name: cifar10, resolution: 32, channels: 3, conditional: false, reference: train}
methods:
  - {method: gdd, preset: smoke, label: GDD}
  - {method: gdd, preset: smoke-i, label: GDD-I}
  - method: gdd
    preset: smoke
    label: no-aug
    sweep: {method.r1_gamma: [1.0e-3, 1.0e-5]}
  - {method: d2o, preset: smoke, label: D2O}
  - {method: d2o, preset: smoke-f, label: D2O-F}
evaluation: {metrics: [fid, isc], n_samples: 200, seeds: "0-199", every_kimg: 1, periodic_n_samples: 100, grid_samples: 4}
published:
  - {label: GDD, ref: gdd/3a/GDD}
  - {label: GDD-I, ref: gdd/3a/GDD-I, metric: fid}
  - {label: no-aug, ref: gdd/1b/no-aug-r1=1e-3, where: {method.r1_gamma: 1.0e-3}}
  - {label: no-aug, ref: gdd/1b/no-aug-r1=1e-5, where: {method.r1_gamma: 1.0e-5}}
  - {label: D2O, ref: d2o/4/D2O, metric: fid}
"""
GDD_TITLE = "Diffusion Models Are Innate One-Step Generators"
DIGITS_SUITE = """
name: toy_digits
dataset: {name: digits, resolution: 8, channels: 1, conditional: true}
methods: [{method: edm, preset: smoke, label: edm}]
evaluation: {metrics: [fd_digits], n_samples: 200, seeds: "0-199", every_kimg: 1, periodic_n_samples: 100}
"""
BETTER = {"fid": "lower", "isc": "higher", "fd_digits": "lower"}
PUBLISHED = {("GDD", "fid"): 1.66, ("GDD", "isc"): 10.11, ("GDD-I", "fid"): 1.54, ("no-aug[r1_gamma=0.001]", "fid"): 1.77}


class ReportPipeline:
    """Stand-in stages: three periodic evaluations, then final metrics from FINAL, records in
    the shape of the real Pipeline.evaluate ({key: {value, raw, n, std, untrained, display}})."""

    def load_teacher(self, spec):
        return None

    def load_data(self, spec, split="train"):
        return None

    def train(self, spec, run, teacher, data, evaluate):
        if spec.label in FAILING:
            raise RuntimeError("fake training diverged: loss is NaN")
        for step in (1, 2, 3):
            if spec.label in INTERRUPTED and step == 3:
                raise KeyboardInterrupt  # the run stays 'running' with a dead owner -> interrupted
            evaluate((spec.label, step), step * 1000)
        return TrainResult((spec.label, "final"), {"steps": 3})

    def evaluate(self, spec, generator, data, metrics, n, seeds, reference):
        label, step = generator
        out = {}
        for m in metrics:
            value = FINAL.get(label, {}).get(m, 50.0) if step == "final" else periodic_value(m, step, label)
            out[m] = {"value": value, "raw": value, "n": n, "std": None, "untrained": label in UNTRAINED_LABELS,
                      "display": DISPLAY[m]}
            if m == "fd_digits" and step == "final":
                out[m].update(floor=31.5, floor_n=500)
        return out

    def save_grid(self, generator, path, n):
        Image.new("L", (16, 16), color=128).save(path, format="PNG")


def periodic_value(metric: str, step: int, label: str) -> float:
    return 100.0 / step + 5.0 * len(label) + (1.0 if metric == "isc" else 0.0)


def _write_suite(tmp: Path, text: str, name: str) -> Path:
    path = tmp / f"{name}.yaml"
    path.write_text(textwrap.dedent(text))
    return path


@pytest.fixture(scope="module")
def store_setup(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("report_store")
    toy, digits = _write_suite(tmp, TOY_SUITE, "toy"), _write_suite(tmp, DIGITS_SUITE, "toy_digits")
    store = ResultsStore(tmp / "store")
    store.check_writable()
    pipe = ReportPipeline()
    specs = expand_runs(load_suite(toy)) + expand_runs(load_suite(digits))
    for spec in specs:
        if spec.label in NOT_STARTED:
            continue
        try:
            execute_run(spec, store, pipe, log=lambda m: None)
        except (RuntimeError, KeyboardInterrupt):
            pass
    return {"store": store, "toy": toy, "digits": digits, "specs": {s.label: s for s in specs}, "tmp": tmp}


def _suites_info(setup):
    out = {}
    for path in (setup["toy"], setup["digits"]):
        suite = load_suite(path)
        out[suite.name] = {"published": published_entries(suite), "metrics": suite.evaluation.metrics,
                           "expected": [{"run_id": r.run_id, "label": r.label, "method": r.method, "preset": r.preset,
                                         "sweep_point": r.sweep_point} for r in expand_runs(suite)]}
    return out


@pytest.fixture(scope="module")
def report(store_setup):
    store = store_setup["store"]
    states = {s.run_id: (s.state, s.detail) for s in store.states()}
    out = store_setup["tmp"] / "report"
    result = build_report(store.root, out, suites=_suites_info(store_setup), states=states, better=BETTER.get)
    return result


def _csv_rows(result):
    return list(csv.DictReader(io.StringIO(result.csv.read_text())))


def _row(rows, label, metric=None):
    found = [r for r in rows if r["label"] == label and (metric is None or r["metric"] == metric)]
    assert len(found) == 1, f"{label}/{metric}: {len(found)} rows"
    return found[0]


class _Tables(HTMLParser):
    """Every HTML table as rows of cell texts."""

    def __init__(self):
        super().__init__()
        self.tables, self._cell = [], None

    def handle_starttag(self, tag, attrs):
        if tag == "table":
            self.tables.append([])
        elif tag == "tr" and self.tables:
            self.tables[-1].append([])
        elif tag in ("td", "th"):
            self._cell = []
        elif self._cell is not None and tag in ("br", "div", "span"):
            self._cell.append(" ")

    def handle_endtag(self, tag):
        if tag in ("td", "th") and self._cell is not None:
            self.tables[-1][-1].append(" ".join("".join(self._cell).split()))
            self._cell = None

    def handle_data(self, data):
        if self._cell is not None:
            self._cell.append(data)


def _html_tables(result):
    p = _Tables()
    p.feed(result.html.read_text())
    return p.tables


def _leaderboard_cell(result, label, header):
    for table in _html_tables(result):
        if not table or not table[0] or table[0][0] != "run" or header not in table[0]:
            continue
        for row in table[1:]:
            if row[0].split(" ")[0] == label:
                cells = dict(zip(table[0], row))
                return cells, cells[header]
    raise AssertionError(f"no leaderboard row {label} with column {header}")


# --- tests -------------------------------------------------------------------------------------
def test_store_holds_every_kind_of_run(store_setup):
    states = {store_setup["store"].run(s.run_id).state().state for s in store_setup["specs"].values() if s.label not in NOT_STARTED}
    assert states == {"complete", "failed", "interrupted"}


def test_reproduced_next_to_published_with_difference_and_protocol_flag(report):
    rows = _csv_rows(report)
    for (label, metric), published in PUBLISHED.items():
        r = _row(rows, label, metric)
        value = FINAL[label][metric]
        assert float(r["value"]) == pytest.approx(value)
        assert float(r["published"]) == pytest.approx(published)
        assert float(r["difference"]) == pytest.approx(value - published)
        assert float(r["relative_difference"]) == pytest.approx((value - published) / published)
        assert int(r["n"]) == N_FINAL
        assert "n=200 vs the paper's 50,000" in r["comparison_flags"]
        assert r["paper"] and r["table"] and r["paper_row"]
    # the sweep point picks the published row with the same r1_gamma (Table 1b, 1e-3 -> 1.77)
    assert _row(rows, "no-aug[r1_gamma=0.001]", "fid")["paper_row"] == "GDD: no-aug-r1=1e-3"
    assert _row(rows, "no-aug[r1_gamma=0.001]", "fid")["table"] == "Table 1b"
    # no published number for IS of GDD-I or no-aug: none invented
    assert _row(rows, "GDD-I", "isc")["published"] == ""
    assert _row(rows, "no-aug[r1_gamma=0.001]", "isc")["published"] == ""
    # HTML shows the same comparison
    _, cell = _leaderboard_cell(report, "GDD", "FID")
    assert "3.25" in cell and "published 1.66" in cell and "+1.59" in cell and f"{GDD_TITLE}, Table 3a" in cell
    assert "n=200 vs the paper's 50,000" in cell


def test_untrained_metrics_are_marked_everywhere(report):
    rows = _csv_rows(report)
    for metric in ("fid", "isc"):
        r = _row(rows, "GDD-I", metric)
        assert r["untrained"] == "True" and r["flags"] == "UNTRAINED"
        t = _row(rows, "GDD", metric)
        assert t["untrained"] == "False" and t["flags"] == ""
    assert "UNTRAINED" in _row(rows, "GDD-I", "fid")["comparison_flags"]
    doc = json.loads(report.json.read_text())
    j = [r for r in doc["rows"] if r["label"] == "GDD-I" and r["metric"] == "fid"][0]
    assert j["untrained"] is True and "UNTRAINED" in j["flags"]
    _, cell = _leaderboard_cell(report, "GDD-I", "FID")
    assert "UNTRAINED" in cell
    _, cell = _leaderboard_cell(report, "GDD", "FID")
    assert "UNTRAINED" not in cell


def test_failed_interrupted_and_pending_runs(report):
    rows = _csv_rows(report)
    failed = _row(rows, "no-aug[r1_gamma=1e-05]")
    assert failed["state"] == "failed" and "fake training diverged: loss is NaN" in failed["detail"]
    assert failed["metric"] == "" and failed["settings"] == "method.r1_gamma=1e-05"
    assert _row(rows, "D2O")["state"] == "interrupted"
    pending = _row(rows, "D2O-F")
    assert pending["state"] == "pending" and "not started" in pending["detail"]
    row, _ = _leaderboard_cell(report, "no-aug[r1_gamma=1e-05]", "FID")
    assert "failed" in row["state"] and "fake training diverged" in row["state"]
    section = report.html.read_text().split(f'id="run-{failed["run_id"]}"', 1)[1].split("</details>\n</details>", 1)[0]
    assert "Traceback (most recent call last)" in section and "fake training diverged" in section
    # published rows whose runs did not complete are listed, not compared
    doc = json.loads(report.json.read_text())
    left = {(p["label"], p["value"], p["reason"]) for p in doc["published_without_run"]}
    assert left == {("no-aug", 1.66, "run failed"), ("D2O", 1.66, "run interrupted")}


def test_ranking_leaves_untrained_and_unfinished_runs_unranked(report):
    rows = _csv_rows(report)
    toy = [r for r in rows if r["suite"] == "toy"]
    # trained, complete FIDs: no-aug 2.5 < GDD 3.25; GDD-I is UNTRAINED (4.5): not ranked
    assert [(r["label"], r["rank"]) for r in toy if r["metric"] == "fid"] == [
        ("no-aug[r1_gamma=0.001]", "1"), ("GDD", "2"), ("GDD-I", "")]
    assert all(r["rank"] == "" for r in toy if r["state"] != "complete")
    best = {(r["label"], r["metric"]) for r in toy if r["best"] == "True"}
    assert best == {("no-aug[r1_gamma=0.001]", "fid"), ("no-aug[r1_gamma=0.001]", "isc")}  # IS: 9.75 > 9.5
    row, _ = _leaderboard_cell(report, "no-aug[r1_gamma=0.001]", "FID")
    assert row["#"] == "1"


def test_json_holds_the_csv_rows(report):
    doc = json.loads(report.json.read_text())
    rows = _csv_rows(report)
    assert len(doc["rows"]) == len(rows)
    for j, c in zip(doc["rows"], rows):
        assert (j["label"], j["metric"] or "", j["state"]) == (c["label"], c["metric"], c["state"])
        if j["value"] is not None:
            assert math.isclose(j["value"], float(c["value"]))


def test_digits_metric_is_an_fd_with_its_floor_never_fid(report):
    rows = _csv_rows(report)
    r = _row(rows, "edm", "fd_digits")
    assert r["metric_name"] == "FD-digits" and float(r["value"]) == 42.0
    assert float(r["floor"]) == 31.5 and int(r["floor_n"]) == 500 and r["published"] == ""
    row, cell = _leaderboard_cell(report, "edm", "FD-digits")
    assert "data floor 31.5 (n=500)" in cell
    assert metric_display_name("fd_digits", {"display": "FID"}) != "FID"
    for table in _html_tables(report):
        if table and table[0] and "FD-digits" in table[0]:
            assert not any("FID" in h for h in table[0])


def test_settings_show_sweep_values(report):
    rows = _csv_rows(report)
    assert _row(rows, "no-aug[r1_gamma=0.001]", "fid")["settings"] == "method.r1_gamma=0.001"
    # GDD shares method and preset with the no-aug sweep: the key that tells them apart is shown
    assert _row(rows, "GDD", "fid")["settings"] == "method.r1_gamma=0.0001"
    assert _row(rows, "GDD-I", "fid")["settings"] == ""  # alone with its preset: nothing to tell apart


def test_convergence_plot_and_grids_are_valid_images(report, store_setup):
    fid_plot = [p for p in report.plots if p.name.startswith("convergence_toy_") and p.name.endswith("_fid.png")]
    assert len(fid_plot) == 1
    with Image.open(fid_plot[0]) as im:
        im.verify()
    with Image.open(fid_plot[0]) as im:
        px = im.convert("L")
        lo, hi = px.getextrema()
        assert im.size[0] >= 300 and hi - lo > 100  # drawn on, not blank
    html = report.html.read_text()
    assert f'data-file="plots/{fid_plot[0].name}"' in html  # embedded as a data URI, also written as a file
    # one grid per run that reached the end; the interrupted and failed ones have none
    complete = [s for s in store_setup["specs"].values() if s.label in FINAL]
    assert {p.stem for p in report.grids} == {s.run_id for s in complete}
    for p in report.grids:
        with Image.open(p) as im:
            assert im.size == (16, 16)
        assert f'data-file="grids/{p.name}"' in html


def test_provenance_per_run(report, store_setup):
    spec = store_setup["specs"]["GDD"]
    prov = json.loads((store_setup["store"].run(spec.run_id).provenance_file).read_text())
    html = report.html.read_text()
    assert f'id="run-{spec.run_id}"' in html
    section = html.split(f'id="run-{spec.run_id}"', 1)[1].split("</details>", 1)[0]
    assert str(prov["git"]["sha"]) in section
    assert prov["packages"]["torch"] in section and str(prov["hardware"]["cpu_count"]) in section
    assert ("dirty" in section) == bool(prov["git"]["dirty"])


def test_cli_report_for_one_suite(store_setup, capsys):
    from onestep.benchmarks.cli import main

    out = store_setup["tmp"] / "cli_report"
    code = main(["report", "--store", str(store_setup["store"].root), "--suite", str(store_setup["toy"]), "--out", str(out)])
    assert code == 0, capsys.readouterr()
    rows = list(csv.DictReader(io.StringIO((out / "leaderboard.csv").read_text())))
    assert {r["suite"] for r in rows} == {"toy"}  # the digits suite is left out
    assert _row(rows, "D2O", None)["state"] == "interrupted"  # the store's liveness check
    assert _row(rows, "D2O-F", None)["state"] == "pending"
    assert (out / "index.html").exists()


def test_cli_missing_store_is_a_clear_error(tmp_path, capsys):
    from onestep.benchmarks.cli import main

    code = main(["report", "--store", str(tmp_path / "nope")])
    err = capsys.readouterr().err
    assert code == 2 and "does not exist" in err and "--store" in err
    with pytest.raises(ReportError, match="does not exist"):
        build_report(tmp_path / "nope")


def test_empty_store_renders_a_message(tmp_path):
    (tmp_path / "store").mkdir()
    stale = tmp_path / "out" / "plots" / "convergence_old_run_fid.png"  # from an earlier rendering
    stale.parent.mkdir(parents=True)
    stale.write_bytes(b"old")
    result = build_report(tmp_path / "store", tmp_path / "out")
    assert not stale.exists()
    assert "has no runs yet" in result.message and "onestep run smoke" in result.message
    assert "has no runs yet" in result.html.read_text()
    assert json.loads(result.json.read_text())["rows"] == []
    lines = result.csv.read_text().splitlines()
    assert len(lines) == 1 and lines[0].startswith("suite,dataset,rank,label,")  # the header only


def test_damaged_run_directory_is_reported_not_raised(tmp_path):
    run = tmp_path / "store" / "runs" / "gdd-000000000000"
    run.mkdir(parents=True)
    (run / "config.json").write_text('{"suite": "toy", "label": "broken", "method": "gdd"')  # truncated
    (run / "final.json").write_text("not json")
    (run / "metrics.jsonl").write_text('{"kind": "periodic", "kimg": 1, "fid": 5}\n{oops\n')
    (run / "samples.png").write_bytes(b"not a png")
    runs = read_store(tmp_path / "store")
    assert len(runs) == 1 and len(runs[0].series) == 1
    assert any("config.json is unreadable" in p for p in runs[0].problems)
    result = build_report(tmp_path / "store", tmp_path / "out")
    html = result.html.read_text()
    assert "config.json is unreadable" in html and "not a PNG" in html and not result.grids


def test_reports_need_neither_torch_nor_methods(report, tmp_path):
    code = textwrap.dedent(f"""
        import sys
        from onestep.reports import build_report
        build_report({str(report.out_dir.parent / 'store')!r}, {str(tmp_path / 'r')!r})
        bad = [m for m in sys.modules if m == 'torch' or m.startswith(('torch.', 'onestep.methods', 'onestep.benchmarks'))]
        assert not bad, bad
    """)
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)
    assert (tmp_path / "r" / "index.html").exists()


def test_metric_cells_read_repeats_std_and_every_untrained_marker():
    from onestep.reports.leaderboard import compare, metric_cells

    final = {
        "metrics": {"fid": 2.0, "fid_std": 0.1, "isc": 9.0, "kid": 0.01},
        "repeats": 2,
        "n_samples": 50000,
        "untrained_feature_weights": True,
        "metric_details": {
            "repeat0": {"fid": {"value": 1.9, "n": 50000, "untrained": False, "display": "FID"},
                        "isc": {"value": 9.0, "n": 50000, "extractor": {"name": "inception", "untrained": True}}},
            "repeat1": {"fid": {"value": 2.1, "n": 50000, "untrained": False, "display": "FID"},
                        "isc": {"value": 9.0, "n": 50000, "extractor": {"name": "inception", "untrained": True}}},
        },
    }
    cells = metric_cells(final)
    assert set(cells) == {"fid", "isc", "kid"}  # fid_std is fid's spread, not a metric
    assert cells["fid"].std == 0.1 and cells["fid"].repeats == 2 and cells["fid"].n == 50000
    assert not cells["fid"].untrained  # its records say trained
    assert cells["isc"].untrained and cells["isc"].extractor == "inception"  # the extractor says untrained
    assert cells["kid"].untrained and cells["kid"].n == 50000  # no record: the run-level flag holds
    comp = compare(cells["fid"], {"paper": "p", "table": "t", "row": "r", "value": 1.5})
    assert comp.difference == pytest.approx(0.5) and comp.flags == []  # same protocol: nothing to flag
    cells["fid"].n = None
    assert "n not recorded" in compare(cells["fid"], {"value": 1.5}).flags[0]


def test_suite_without_runs_lists_its_published_numbers_only(store_setup, tmp_path):
    ghost = {"published": [{"paper": "000 GDD", "table": "Table 3b", "row": "GDD", "label": "X", "metric": "fid", "value": 1.23}]}
    result = build_report(store_setup["store"].root, tmp_path / "out", suites={"ghost": ghost}, only_suites=["ghost"])
    html = result.html.read_text()
    assert "no runs of suite &#39;ghost&#39; in the store yet" in html and "no run labelled &#39;X&#39;" in html
    assert json.loads(result.json.read_text())["rows"] == []  # nothing of the other suites leaks in
    assert json.loads(result.json.read_text())["published_without_run"][0]["value"] == 1.23
