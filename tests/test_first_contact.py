"""What a new user hits in the first hour (issue 11): bad input gets one line naming the problem
and the fix, exit 2, and nothing written; silent wrong answers are refused; shared stores stay
readable and consistent. docs/BAD_INPUT.md lists every bad input tried here."""
from __future__ import annotations

import io
import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from onestep.benchmarks.cli import main
from onestep.benchmarks.runner import SetupError, execute_run, resolve_device, suite_table, format_table
from onestep.benchmarks.store import ResultsStore
from onestep.benchmarks.suites import expand_runs, load_suite, validate_suite
from onestep.methods.core.config import ConfigError

TESTS = Path(__file__).resolve().parent
sys.path.insert(0, str(TESTS))
NO_GPU = not torch.cuda.is_available()


def _err(capsys) -> str:
    return capsys.readouterr().err


def _listing(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*")) if root.exists() else []


# --- eval / generate: refused before any work ------------------------------------------------
@pytest.mark.parametrize("argv, message", [
    (["--num", "0"], "--num must be a positive number"),
    (["--batch", "-5"], "--batch must be a positive number of images per batch"),
    (["--weights", "incepton=/x.pth"], "unknown feature extractor 'incepton' (did you mean 'inception'?)"),
    (["--weights", "inception"], "--weights expects EXTRACTOR=PATH"),
])
def test_eval_bad_numbers_and_weight_keys(tmp_path, capsys, argv, message):
    out = tmp_path / "out.json"
    assert main(["eval", "--images", "digits-8-test", "--ref", "digits-8", "--json", str(out), *argv]) == 2
    err = _err(capsys)
    assert message in err and "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert not out.exists()


def test_eval_unwritable_json_is_refused_before_work(tmp_path, capsys):
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    # the network does not even exist: the output path is checked first
    assert main(["eval", "--network", str(tmp_path / "none.json"), "--ref", "digits-8", "--json",
                 str(blocker / "out.json")]) == 2
    assert "--json" in (err := _err(capsys)) and "is a file, not a folder" in err
    assert main(["eval", "--images", "digits-8-test", "--ref", "digits-8", "--csv", str(tmp_path)]) == 2
    assert "--csv" in _err(capsys)


@pytest.mark.skipif(os.geteuid() == 0, reason="root may write anywhere: the permission check cannot fail")
def test_eval_read_only_folder(tmp_path, capsys):
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o500)
    assert main(["eval", "--images", "digits-8-test", "--ref", "digits-8", "--json", str(ro / "x.json")]) == 2
    assert "not writable" in _err(capsys)


@pytest.mark.skipif(not NO_GPU, reason="needs a machine without a GPU")
@pytest.mark.parametrize("cmd", [["eval", "--images", "digits-8-test", "--ref", "digits-8"],
                                 ["generate", "--network", "x.json", "--outdir", "OUT"]])
def test_device_cuda_without_gpu(tmp_path, capsys, cmd):
    cmd = [c.replace("OUT", str(tmp_path / "out")) for c in cmd]
    assert main([*cmd, "--device", "cuda"]) == 2
    assert "no CUDA GPU is visible" in (err := _err(capsys)) and "--device cpu" in err
    assert not (tmp_path / "out").exists()
    with pytest.raises(ConfigError, match="not a torch device"):
        resolve_device("cdua")


def test_generate_checks_outputs_and_seeds_before_loading(tmp_path, capsys):
    blocker = tmp_path / "f"
    blocker.write_text("x")
    missing_net = str(tmp_path / "missing.json")
    assert main(["generate", "--network", missing_net, "--outdir", str(blocker)]) == 2
    assert "--outdir" in _err(capsys)
    assert main(["generate", "--network", missing_net, "--outdir", str(tmp_path / "o"), "--grid",
                 str(blocker / "g.png")]) == 2
    assert "--grid" in _err(capsys)
    assert main(["generate", "--network", missing_net, "--outdir", str(tmp_path / "o"), "--batch", "0"]) == 2
    assert "--batch must be a positive" in _err(capsys)
    assert main(["generate", "--network", missing_net, "--outdir", str(tmp_path / "o"),
                 "--seeds", "0-99999999999"]) == 2
    assert "at most 10,000,000" in (err := _err(capsys)) and "MemoryError" not in err
    assert not (tmp_path / "o").exists()


def test_generate_digits_teacher_name_untrained(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("ONESTEP_CACHE", str(tmp_path / "cache"))
    assert main(["generate", "--network", "digits", "--outdir", str(tmp_path / "o")]) == 2
    assert "onestep teacher train --preset digits" in _err(capsys)
    assert not (tmp_path / "o").exists()


@pytest.fixture(scope="module")
def net_checkpoint(tmp_path_factory):
    from onestep.methods.checkpoints import save_network
    from onestep.methods.zoo import build_network

    torch.manual_seed(0)
    return save_network(tmp_path_factory.mktemp("ckpt") / "net", build_network("digits-8x8-cond"), {"note": "random"})


def test_generate_prints_json_only_with_flag(net_checkpoint, tmp_path, capsys):
    base = ["generate", "--network", str(net_checkpoint), "--seeds", "0-1", "--steps", "2", "--device", "cpu"]
    assert main([*base, "--outdir", str(tmp_path / "a")]) == 0
    cap = capsys.readouterr()
    assert cap.out == "" and "{" not in cap.err and "wrote 2 images" in cap.err
    assert main([*base, "--outdir", str(tmp_path / "b"), "--json", "--quiet"]) == 0
    assert json.loads(capsys.readouterr().out)["num_images"] == 2


# --- ctrl-C, broken pipes -----------------------------------------------------------------------
def test_ctrl_c_exits_130_and_marks_the_run_interrupted(tmp_path, monkeypatch, capsys):
    from test_runner_fakes import FakePipeline

    class Interrupting(FakePipeline):
        def train(self, spec, run, teacher, data, evaluate):
            raise KeyboardInterrupt

    spec = expand_runs(load_suite({"name": "cc", "teacher": "digits", "methods": [{"method": "gdd", "preset": "smoke"}],
                                   "evaluation": {"n_samples": 2, "seeds": "0-1"}}))[0]
    store = ResultsStore(tmp_path / "s")
    with pytest.raises(KeyboardInterrupt):
        execute_run(spec, store, Interrupting(), log=lambda s: None)
    st = store.run(spec.run_id).state()
    assert st.state == "interrupted" and "no checkpoint yet: a re-run starts at step 0" in st.detail

    import onestep.benchmarks.runner as runner

    monkeypatch.setattr(runner, "run_suite", lambda *a, **k: (_ for _ in ()).throw(KeyboardInterrupt()))
    assert main(["run", "smoke", "--method", "edm", "--store", str(tmp_path / "s2"), "--device", "cpu"]) == 130
    assert _err(capsys).strip().endswith("onestep run: interrupted")


def test_broken_pipe_is_quiet():
    # The reader is gone before the command writes its first line (as `| head` after one line).
    p = subprocess.Popen([sys.executable, "-m", "onestep.benchmarks", "zoo"], stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, env=dict(os.environ, OMP_NUM_THREADS="1"))
    p.stdout.close()
    err = p.stderr.read().decode()
    assert p.wait(timeout=300) == 0, err
    assert "Traceback" not in err and "BrokenPipe" not in err


# --- suites: found before training, not after ---------------------------------------------------
def test_too_few_seeds_refused_by_validate_and_run(tmp_path, capsys):
    suite = tmp_path / "few.yaml"
    suite.write_text("name: few\nteacher: digits\nmethods: [{method: edm, preset: smoke}]\n"
                     "evaluation: {metrics: [fd_digits], n_samples: 1000, seeds: '0-99'}\n")
    assert main(["validate", str(suite)]) == 1
    assert "gives 100 seeds but n_samples is 1000" in capsys.readouterr().out
    store = tmp_path / "store"
    assert main(["run", str(suite), "--store", str(store), "--device", "cpu"]) == 2
    assert "gives 100 seeds but n_samples is 1000" in _err(capsys)
    assert not store.exists()  # refused before the store was touched


@pytest.mark.skipif(not NO_GPU, reason="needs a machine without a GPU")
def test_run_device_cuda_without_gpu_writes_nothing(tmp_path, capsys):
    store = tmp_path / "store"
    assert main(["run", "smoke", "--method", "edm", "--store", str(store), "--device", "cuda"]) == 2
    assert "no CUDA GPU is visible" in _err(capsys)
    assert not store.exists()


def test_setup_errors_do_not_mark_the_run_failed(tmp_path):
    from test_runner_fakes import FakePipeline

    class NoTeacher(FakePipeline):
        def load_teacher(self, spec):
            raise FileNotFoundError("teacher checkpoint /x.pkl does not exist")

    spec = expand_runs(load_suite({"name": "se", "teacher": "digits", "methods": [{"method": "gdd", "preset": "smoke"}],
                                   "evaluation": {"n_samples": 2, "seeds": "0-1"}}))[0]
    store = ResultsStore(tmp_path / "s")
    with pytest.raises(SetupError, match="/x.pkl does not exist"):
        execute_run(spec, store, NoTeacher(), rerun_failed=False, log=lambda s: None)
    assert store.run(spec.run_id).state().state == "pending"  # not 'failed': no --rerun-failed needed
    assert execute_run(spec, store, FakePipeline(steps=2), rerun_failed=False, log=lambda s: None) == "complete"


def test_status_nonexistent_store_and_no_nan(tmp_path, capsys):
    assert main(["status", "smoke", "--store", str(tmp_path / "nonexistent")]) == 2
    assert "no results store at" in _err(capsys)
    assert not (tmp_path / "nonexistent").exists()
    import pandas as pd

    text = format_table(pd.DataFrame([{"label": "a", "fd": 1.5}, {"label": "b", "state": "pending"}]))
    assert "NaN" not in text and "-" in text


def test_status_says_whether_a_rerun_resumes(tmp_path):
    store = ResultsStore(tmp_path)
    run = store.run("m-1")
    run.write_config({"run_id": "m-1"})
    run.claim(me={"host": "elsewhere", "pid": 1})
    import onestep.benchmarks.store as st

    status = run.status()
    status["heartbeat"] = 0  # stale: its owner is gone
    (run.status_file).write_text(json.dumps(status))
    assert run.state().state == "interrupted" and "a re-run starts at step 0" in run.state().detail
    (run.checkpoint_dir).mkdir(parents=True)
    (run.checkpoint_dir / "resume.pt").write_bytes(b"x")
    assert "resumes from its checkpoint" in run.state().detail
    assert st.STATES  # (module imported for the state names)


# --- datasets and pre-flight ---------------------------------------------------------------------
def test_dataset_flag_and_env_variable(tmp_path, monkeypatch, capsys):
    monkeypatch.delenv("ONESTEP_DATASETS", raising=False)
    suite = load_suite("gdd_cifar10")
    _, errors, _ = validate_suite(suite)
    assert any("pass --dataset PATH" in e and "$ONESTEP_DATASETS" in e for e in errors)
    (tmp_path / "cifar10-32x32.zip").write_bytes(b"")
    monkeypatch.setenv("ONESTEP_DATASETS", str(tmp_path))
    _, errors, _ = validate_suite(suite)
    assert not any("dataset cifar10" in e for e in errors)
    assert main(["validate", "gdd_cifar10", "--dataset", str(tmp_path / "missing.zip")]) == 1
    assert "--dataset" in capsys.readouterr().out
    assert main(["status", "smoke", "--dataset", str(tmp_path), "--store", str(tmp_path)]) == 2
    assert "embedded digits dataset" in _err(capsys)


def test_preflight_names_discriminator_weight_files(tmp_path, monkeypatch):
    monkeypatch.setenv("ONESTEP_CACHE", str(tmp_path))
    _, errors, _ = validate_suite(load_suite("gdd_cifar10"))
    vgg = [e for e in errors if "feature network vgg16_bn" in e]
    assert vgg and "vgg16_bn.safetensors" in vgg[0] and "$ONESTEP_CACHE" in vgg[0]
    (tmp_path / "feature_networks").mkdir()
    (tmp_path / "feature_networks" / "vgg16_bn.pth").write_bytes(b"")
    _, errors, _ = validate_suite(load_suite("gdd_cifar10"))
    assert not any("vgg16_bn" in e for e in errors) and any("efficientnet_lite0" in e for e in errors)
    _, errors, _ = validate_suite(load_suite("gdd_discriminator"))
    assert any("VGG16 baseline" in e and "TORCH_HOME" in e for e in errors)


def test_preflight_warns_of_a_random_class_embedding(tmp_path, monkeypatch):
    monkeypatch.setenv("ONESTEP_CACHE", str(tmp_path))
    _, errors, warnings = validate_suite(load_suite("gdd_cifar10_cond"))
    emb = [w for w in warnings if "class embedding" in w]
    assert emb and "tf_efficientnet_lite0_embed.safetensors" in emb[0] and "random embedding" in emb[0]
    assert not any("class embedding" in e for e in errors)
    _, _, warnings = validate_suite(load_suite("gdd_cifar10"))  # unconditional: no embedding needed
    assert not any("class embedding" in w for w in warnings)
    strict = load_suite({"name": "strict", "teacher": None, "dataset": {"name": "cifar10", "conditional": True},
                         "methods": [{"method": "gdd", "preset": "cifar10-cond",
                                      "method_overrides": {"discriminator.class_embedding": "pretrained"}}]})
    _, errors, _ = validate_suite(strict)
    assert any("class embedding file" in e and "in_embeddings/tf_efficientnet_lite0.pkl" in e for e in errors)
    (tmp_path / "feature_networks").mkdir()
    (tmp_path / "feature_networks" / "tf_efficientnet_lite0_embed.safetensors").write_bytes(b"")
    _, errors, warnings = validate_suite(load_suite("gdd_cifar10_cond"))
    assert not any("class embedding" in m for m in errors + warnings)


def test_profile_messages_name_a_way_that_works(tmp_path, monkeypatch, capsys):
    _, errors, _ = validate_suite(load_suite("gdd_cifar10"), check_files=False, profile="local")
    gpu = next(e for e in errors if "GPU(s)" in e)
    assert "a100-8gpu (slurm)" in gpu and "login node" in gpu
    monkeypatch.setenv("PATH", str(tmp_path / "empty-bin"))  # no sbatch/sinfo/srun
    folder = tmp_path / "sweep"
    assert main(["sweep", "smoke", "--profile", "slurm-cpu", "--store", str(tmp_path / "st"),
                 "--folder", str(folder)]) == 2
    err = _err(capsys)
    assert "login node" in err and "--profile local" not in err
    assert not folder.exists()  # a refused submission leaves no sweep folder


def test_sweep_error_suggests_no_files_and_accepts_it(tmp_path, capsys):
    assert main(["sweep", "gdd_cifar10", "--profile", "local", "--store", str(tmp_path)]) == 2
    assert "--no-files" in _err(capsys)
    assert main(["sweep", "gdd_cifar10", "--profile", "local", "--no-files", "--store", str(tmp_path)]) == 2
    err = _err(capsys)
    assert "GPU(s)" in err and "dataset" not in err


def test_local_rank_picks_the_gpu(monkeypatch):
    from onestep.environments import distributed as d

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 4)
    env = d.DistEnv(rank=5, world_size=8, local_rank=1, master_addr="x", master_port=1, source="slurm")
    assert d.resolve_rank_device("cuda", env) == torch.device("cuda", 1)
    assert d.resolve_rank_device("cuda:3", env) == torch.device("cuda", 3)
    assert d.resolve_rank_device("cpu", env) == torch.device("cpu")
    assert d.resolve_rank_device(None, env) == torch.device("cuda", 1)


# --- metrics: refused instead of a clean-looking wrong number ---------------------------------
def _edm_npz(path, sigma, mu=None):
    np.savez(path, mu=np.zeros(2048) if mu is None else mu, sigma=sigma)
    return path


def test_reference_sigma_checks_name_the_file(tmp_path):
    from onestep.benchmarks.metrics.reference import ReferenceFileError, load_reference_file

    rng = np.random.default_rng(0)
    a = rng.standard_normal((2048, 64))
    good = a @ a.T / 64
    assert load_reference_file(_edm_npz(tmp_path / "good.npz", good)).stats["pool"].sigma.shape == (2048, 2048)
    asym = good.copy()
    asym[0, 5] += 1.0
    with pytest.raises(ReferenceFileError, match=r"asym.npz.*not symmetric"):
        load_reference_file(_edm_npz(tmp_path / "asym.npz", asym))
    with pytest.raises(ReferenceFileError, match=r"neg.npz.*not positive semi-definite"):
        load_reference_file(_edm_npz(tmp_path / "neg.npz", good - 2 * np.eye(2048)))
    nan = good.copy()
    nan[3, 3] = np.nan
    with pytest.raises(ReferenceFileError, match=r"nan.npz.*NaN"):
        load_reference_file(_edm_npz(tmp_path / "nan.npz", nan))


def test_resolution_mismatch_is_refused():
    from onestep.benchmarks.datasets import load_digits
    from onestep.benchmarks.metrics.evaluate import evaluate

    images16 = torch.zeros(10, 1, 16, 16, dtype=torch.uint8)
    with pytest.raises(ValueError, match=r"16x16 images but the reference .* is 8x8"):
        evaluate(images16, load_digits(8, 1, split="train"), ["fd_digits"], extractors={"digits": object()},
                 progress=False)


def test_floor_at_another_n_says_why():
    from onestep.benchmarks.metrics.evaluate import MetricRecord

    rec = MetricRecord("FD-digits", 3.0, 3.0, 1000, {}, None, False, floor=1.0, floor_n=719,
                       floor_note="floor at n=719, not n=1000: the reference has 1438 images")
    assert "at n=719 (floor at n=719, not n=1000" in rec.format()


# --- sharing and concurrency -------------------------------------------------------------------
@pytest.mark.parametrize("umask, mode", [(0o022, 0o644), (0o002, 0o664), (0o077, 0o600)])
def test_atomic_writes_honour_the_umask(tmp_path, umask, mode):
    from onestep.methods.core.atomic import atomic_write_text

    old = os.umask(umask)
    try:
        p = atomic_write_text(tmp_path / f"f{umask}", "x")
    finally:
        os.umask(old)
    assert stat.S_IMODE(p.stat().st_mode) == mode


def test_index_includes_a_run_completed_while_it_was_built(tmp_path, monkeypatch):
    store = ResultsStore(tmp_path)
    for rid in ("m-a", "m-b"):
        r = store.run(rid)
        r.write_config({"run_id": rid, "suite": "s", "label": rid})
    calls = []
    real = ResultsStore.build_index

    def slow_build(self):
        df = real(self)
        if not calls:  # another process finishes run m-b while this writer is building
            r = store.run("m-b")
            r.claim()
            r.write_final({"metrics": {"fd": 1.0}})
        calls.append(1)
        return df

    monkeypatch.setattr(ResultsStore, "build_index", slow_build)
    store.write_index()
    import pandas as pd

    df = pd.read_csv(tmp_path / "index.csv")
    assert len(calls) >= 2 and df.set_index("run_id").loc["m-b", "state"] == "complete"


# --- the loop's output ----------------------------------------------------------------------------
def test_loop_eval_line_untrained_tag_and_checkpoint_at_evaluation(tmp_path):
    from test_training_resume import tiny_method

    from onestep.benchmarks.training import train

    method, loop, data = tiny_method({"loop.eval_kimg": 0.048, "loop.checkpoint_kimg": 50.0})
    saved = []

    def on_step(step, nimg):
        if (tmp_path / "resume.pt").exists():
            saved.append(step)
            (tmp_path / "resume.pt").unlink()

    lines = []
    train(method, data, loop, tmp_path, evaluate=lambda G, n: {"fd": 1.0, "untrained": True}, log=lines.append,
          on_step=on_step)
    evals = [l for l in lines if l.startswith("eval")]
    assert evals and all(l.endswith("UNTRAINED") for l in evals) and len(evals) == 4
    assert saved[:3] == [3, 6, 9]  # a checkpoint after every evaluation, though checkpoint_kimg is 50


def test_progress_is_a_few_lines_in_a_log():
    from onestep.benchmarks.progress import Progress

    buf = io.StringIO()
    bar = Progress("generating", 1000, True, stream=buf)
    for _ in range(100):
        bar.update(10)
    bar.close()
    lines = buf.getvalue().splitlines()
    assert len(lines) == 1 and "1000/1000 images" in lines[0] and "images/s" in lines[0] and "\r" not in buf.getvalue()


def test_progress_interval_lines_carry_an_eta(monkeypatch):
    from onestep.benchmarks.progress import Progress

    monkeypatch.setenv("ONESTEP_PROGRESS_S", "0")
    buf = io.StringIO()
    bar = Progress("extracting", 100, True, stream=buf)
    bar.set(50)
    assert "ETA" in buf.getvalue() and "50/100" in buf.getvalue()
    bar.close()


# --- smoke suite and dry runs -------------------------------------------------------------------------
def test_smoke_runs_d2o_f_and_method_presets_are_checked():
    runs = {r.method: r for r in expand_runs(load_suite("smoke"))}
    assert runs["d2o"].preset == "smoke-f" and runs["gdd"].preset == "smoke"
    assert runs["d2o"].method_config != runs["gdd"].method_config  # not byte-identical any more
    with pytest.raises(ConfigError, match="did you mean 'smoke-f'"):
        expand_runs(load_suite({"name": "x", "method_presets": {"d2o": "smoke-ff"}}))
    with pytest.raises(ConfigError, match="unknown method 'd2oo'"):
        expand_runs(load_suite({"name": "x", "method_presets": {"d2oo": "smoke"}}))


def _coarse_key(spec):
    """Architecture only (method, teacher, data shape, discriminator): keeps the test seconds."""
    disc = spec.method_config.get("discriminator") or {}
    ds = spec.dataset
    return (spec.method, spec.teacher, ds["resolution"], ds["channels"], ds["conditional"],
            json.dumps({k: disc.get(k) for k in ("kind", "feature_networks")}, sort_keys=True))


def test_dry_run_builds_every_paper_suite(capsys):
    from onestep.benchmarks.dryrun import dry_run
    from onestep.benchmarks.suites import available_suites

    done: dict = {}
    names = [n for n in available_suites() if n != "smoke"]
    assert len(names) >= 9
    bad, upstream = [], set()
    for name in names:
        runs = expand_runs(load_suite(name))
        results = dry_run(runs, device="meta", key=_coarse_key, done=done, log=lambda s: None)
        for r in results:
            if not r.ok:
                bad.append((name, r.label, r.detail))
            # Runs that start from another run's generator (SiD2A from SiD, SFD's second stage
            # from the first) get a stand-in for it, named in the report.
            upstream.update(s.split(":")[0] for s in r.stand_ins)
    assert not bad, bad
    assert "method.sid_checkpoint" in upstream, upstream  # SFD's second stage shares a key with its first: below
    assert len(done) >= 5  # distinct architectures really built


def test_dry_run_stands_in_for_the_first_stage_of_sfd():
    from onestep.benchmarks.dryrun import dry_run

    (second,) = [r for r in expand_runs(load_suite("sfd_cifar10")) if r.method_config.get("second_stage")]
    assert not second.method_config.get("first_stage")
    (res,) = dry_run([second], device="meta", log=lambda s: None)
    assert res.ok, res.detail
    assert any(s.startswith("method.first_stage: first-stage SFD generator") for s in res.stand_ins), res.stand_ins


def test_dry_run_steps_every_smoke_method_on_cpu(tmp_path, capsys):
    assert main(["validate", "--dry-run", "smoke"]) == 0
    out = capsys.readouterr().out
    for method in ("cd", "d2o-smoke-f", "edm", "gdd"):
        assert f"dry-run {method}: ok" in out and "took 1 step at batch 2 on cpu" in out


def test_dry_run_reports_a_broken_preset(tmp_path, capsys):
    suite = tmp_path / "bad.yaml"
    suite.write_text("name: bad\nteacher: digits\nmethods:\n"
                     "  - {method: edm, preset: smoke, method_overrides: {network: digits-16x16-cond}}\n"
                     "evaluation: {metrics: [fd_digits], n_samples: 4, seeds: '0-3'}\n")
    assert main(["validate", "--dry-run", str(suite)]) == 1
    out = capsys.readouterr().out
    assert "dry-run edm: FAILED" in out and "ConfigError" in out


def test_dry_run_says_what_it_stood_in_for(tmp_path, monkeypatch):
    from onestep.benchmarks.dryrun import dry_run

    monkeypatch.setenv("ONESTEP_CACHE", str(tmp_path))
    runs = expand_runs(load_suite("gdd_cifar10"))[:1]
    res = dry_run(runs, device="meta", log=lambda s: None)[0]
    assert res.ok, res.detail
    text = " | ".join(res.stand_ins)
    assert "teacher edm-cifar10-32x32-uncond-ve" in text and "random 32x32x3 images" in text
    assert "vgg16_bn" in text and "random weights" in text


def test_second_run_of_a_suite_says_which_runs_are_elsewhere(tmp_path, monkeypatch, capsys):
    import onestep.benchmarks.runner as runner

    monkeypatch.setattr(runner, "run_suite", lambda runs, store, *a, **k: runner.SuiteOutcome(
        {r.run_id: "running" for r in runs}, {}, None))
    assert main(["run", "smoke", "--method", "edm", "--store", str(tmp_path), "--device", "cpu"]) == 0
    err = _err(capsys)
    assert "1 run(s) are being run by another process (edm)" in err and "onestep status smoke" in err
