"""The analysis plugin interface: registry, run directories, resume, records, CLI, report reader."""
import json
import sys
from dataclasses import dataclass

import pytest

from onestep.benchmarks.analyses import (Analysis, AnalysisResult, available_analyses, execute_analysis, get_analysis,
                                         register_analysis)
from onestep.benchmarks.analyses.base import REGISTRY
from onestep.methods.core.config import ConfigError

CALLS = {"stage": 0, "fail": False}


@dataclass
class ToyConfig:
    size: int = 3
    seed: int = 0


class Toy(Analysis):
    name = "toy-test"
    title = "A toy analysis"
    Config = ToyConfig
    presets = {"smoke": {"size": 2}, "big": {"size": 5}}

    def run(self, ctx):
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        def stage():
            CALLS["stage"] += 1
            return {"squares": [i * i for i in range(self.config.size)]}

        data = ctx.stage("squares", stage)
        if CALLS["fail"]:
            raise RuntimeError("interrupted after the first stage")
        table = ctx.write_csv("toy.csv", [{"i": i, "sq": v} for i, v in enumerate(data["squares"])])
        fig, ax = plt.subplots()
        ax.plot(data["squares"])
        figure = ctx.save_figure(fig, "toy.png")
        return AnalysisResult(f"{len(data['squares'])} squares", [{"claim": "c", "holds": True, "evidence": "e"}],
                              [figure], [table], data)


@pytest.fixture
def toy():
    register_analysis(Toy)
    CALLS.update(stage=0, fail=False)
    yield Toy
    REGISTRY._classes.pop("toy-test", None)


def test_builtin_analyses_are_registered_with_smoke_presets():
    found = available_analyses()
    assert {"relfid", "frequency", "activations", "freezing"} <= set(found)
    assert all("smoke" in cls.presets for cls in found.values())


def test_unknown_names_fail_with_a_suggestion(toy, tmp_path):
    with pytest.raises(ConfigError, match="did you mean 'relfid'"):
        get_analysis("relfld")
    with pytest.raises(ConfigError, match="no preset 'smok'"):
        execute_analysis("toy-test", "smok", store=tmp_path)
    with pytest.raises(ConfigError, match="size"):
        execute_analysis("toy-test", "smoke", {"sise": 4}, store=tmp_path)


def test_registration_needs_a_smoke_preset():
    class NoSmoke(Toy):
        name = "nosmoke"
        presets = {"big": {}}

    with pytest.raises(TypeError, match="smoke"):
        register_analysis(NoSmoke)


def test_run_directory_record_resume_and_skip(toy, tmp_path):
    CALLS["fail"] = True
    with pytest.raises(RuntimeError, match="interrupted"):
        execute_analysis("toy-test", "smoke", store=tmp_path, device="cpu", log=lambda s: None)
    runs = list((tmp_path / "runs").iterdir())
    assert len(runs) == 1 and runs[0].name.startswith("analysis-toy-test-")
    run = runs[0]
    assert json.loads((run / "status.json").read_text())["state"] == "failed"
    assert not (run / "final.json").exists() and CALLS["stage"] == 1

    CALLS["fail"] = False
    state, rd = execute_analysis("toy-test", "smoke", store=tmp_path, device="cpu", log=lambda s: None)
    assert state == "complete" and rd.path == run
    assert CALLS["stage"] == 1  # the finished stage was read back, not recomputed
    final = json.loads((run / "final.json").read_text())
    assert final["kind"] == "analysis" and final["analysis"] == "toy-test" and final["title"] == "A toy analysis"
    assert final["summary"] == "2 squares" and final["figures"] == ["toy.png"] and final["tables"] == ["toy.csv"]
    assert (run / "toy.png").read_bytes()[:4] == b"\x89PNG"
    assert (run / "toy.csv").read_text().splitlines() == ["i,sq", "0,0", "1,1"]
    config = json.loads((run / "config.json").read_text())
    assert config["kind"] == "analysis" and config["config"] == {"size": 2, "seed": 0}
    prov = json.loads((run / "provenance.json").read_text())
    assert "git" in prov and len(prov["attempts"]) == 2

    assert execute_analysis("toy-test", "smoke", store=tmp_path, log=lambda s: None)[0] == "complete"
    assert CALLS["stage"] == 1
    # another config is another run directory
    execute_analysis("toy-test", "smoke", {"size": 4}, store=tmp_path, log=lambda s: None)
    assert len(list((tmp_path / "runs").iterdir())) == 2 and CALLS["stage"] == 2


def test_listed_files_must_exist(toy, tmp_path, monkeypatch):
    def bad_run(self, ctx):
        return AnalysisResult("x", figures=["missing.png"])

    monkeypatch.setattr(Toy, "run", bad_run)
    with pytest.raises(FileNotFoundError, match="missing.png"):
        execute_analysis("toy-test", "smoke", store=tmp_path, log=lambda s: None)


def test_report_sections_read_the_records(toy, tmp_path):
    from onestep.reports.analysis_sections import analysis_sections

    assert analysis_sections(tmp_path) == []
    execute_analysis("toy-test", "smoke", store=tmp_path, log=lambda s: None)
    (tmp_path / "runs" / "gdd-123").mkdir()  # a training run: not a section
    (tmp_path / "runs" / "gdd-123" / "final.json").write_text(json.dumps({"metrics": {"fd_digits": 1.0}}))
    [sec] = analysis_sections(tmp_path)
    assert sec["title"] == "A toy analysis" and sec["summary"] == "2 squares"
    assert [p.rsplit("/", 1)[-1] for p in sec["figures"]] == ["toy.png"]
    assert [p.rsplit("/", 1)[-1] for p in sec["tables"]] == ["toy.csv"]
    assert sec["run_dir"].endswith(sec["run_dir"].rsplit("/", 1)[-1]) and sec["claims"][0]["holds"] is True


def test_cli_lists_analyses_and_runs_one(toy, tmp_path, monkeypatch, capsys):
    from onestep.benchmarks.cli import build_parser, main

    monkeypatch.setattr(sys, "argv", ["onestep", "analyze", "--help"])
    with pytest.raises(SystemExit):
        build_parser().parse_args(["analyze", "--help"])
    out = capsys.readouterr().out
    for name in ("relfid", "frequency", "activations", "freezing", "toy-test"):
        assert name in out
    assert main(["analyze", "toy-test", "--store", str(tmp_path), "--set", "size=3"]) == 0
    assert "complete" in capsys.readouterr().out
    assert main(["analyze", "nope", "--store", str(tmp_path)]) == 2


def test_freezing_share_table_reuses_the_zoo_roles():
    from onestep.benchmarks.analyses.freezing import share_rows
    from onestep.benchmarks.commands.zoo import describe

    rows = share_rows("digits-8x8-cond")
    roles = {r["name"]: r for r in rows if r["kind"] == "role"}
    levels = {r["name"]: r for r in rows if r["kind"] == "freeze_level"}
    info = describe("digits-8x8-cond")
    assert sum(r["share"] for r in roles.values()) == pytest.approx(1.0)
    assert roles["conv"]["params"] == info["role_params"]["conv"]
    assert levels["none"]["share"] == 1.0
    assert levels["conv"]["share"] == pytest.approx(1 - roles["conv"]["share"])
    assert levels["conv_qkv_skip"]["share"] == pytest.approx(
        1 - sum(roles[r]["share"] for r in ("conv", "qkv", "skip") if r in roles))
