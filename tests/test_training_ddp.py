"""DDP: 2 gloo processes with the same global batch reach the 1-process weights; sharding of
data and ctx random draws; process-group set-up from torchrun and Slurm variables."""
from __future__ import annotations

import os
import socket
import sys
from pathlib import Path

import pytest
import torch
import torch.multiprocessing as mp

from onestep.benchmarks.datasets import load_digits
from onestep.benchmarks.training import LoopContext, ShardedBatches
from onestep.environments.distributed import detect_env, first_slurm_host, slurm_port

sys.path.insert(0, str(Path(__file__).parent))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _worker(rank: int, world: int, port: int, run_dir: str, threads: int) -> None:
    os.environ.update(RANK=str(rank), WORLD_SIZE=str(world), LOCAL_RANK=str(rank),
                      MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(threads)
    from onestep.environments.distributed import distributed
    from test_training_resume import tiny_method
    from onestep.benchmarks.training import train

    with distributed(device="cpu") as (env, device):
        assert env.world_size == world and env.rank == rank and env.source == "torchrun"
        method, loop, data = tiny_method()
        train(method, data, loop, run_dir, device=device, log=lambda s: None)


def test_two_gloo_processes_equal_one_process(tmp_path):
    from test_training_resume import final_tensors, tiny_method
    from onestep.benchmarks.training import train

    method, loop, data = tiny_method()
    train(method, data, loop, tmp_path / "one", log=lambda s: None)
    mp.start_processes(_worker, args=(2, _free_port(), str(tmp_path / "two"), 1), nprocs=2, join=True,
                       start_method="spawn")
    one, two = final_tensors(tmp_path / "one"), final_tensors(tmp_path / "two")
    assert one.keys() == two.keys()
    worst = max((one[k].double() - two[k].double()).abs().max().item() for k in one if one[k].is_floating_point())
    assert worst < 1e-4, f"2-process weights differ from 1-process weights by up to {worst}"
    # Not trivially equal because nothing trained: the weights moved away from initialization.
    init, _, _ = tiny_method()
    w = init.net.state_dict()["model.enc.8x8_conv.weight"]
    assert not torch.allclose(w, one[".method.modules.generator.model.enc.8x8_conv.weight"])


def test_rank_slices_of_data_make_the_one_rank_batch():
    data = load_digits(8, 1, "all").subset(range(50))  # global batch 20 wraps epochs of 50
    single = ShardedBatches(data, 20, seed=3)
    shards = [ShardedBatches(data, 20, seed=3, rank=r, world_size=4) for r in range(4)]
    for step in (0, 1, 2, 7):
        whole = single.batch(step)
        parts = [s.batch(step) for s in shards]
        assert torch.equal(torch.cat([p.images for p in parts]), whole.images)
        assert torch.equal(torch.cat([p.labels for p in parts]), whole.labels)
    # Every epoch visits every image exactly once (steps 0..4 = 100 images = 2 epochs).
    seen = torch.cat([single.indices(s) for s in range(5)])
    assert sorted(seen[:50].tolist()) == list(range(50)) and sorted(seen[50:].tolist()) == list(range(50))
    assert not torch.equal(seen[:50], seen[50:]), "each epoch has its own order"
    assert whole.images.min() >= -1 and whole.images.max() <= 1
    assert torch.equal(whole.labels.argmax(1), data.labels[single.indices(7)])
    with pytest.raises(ValueError, match="not divisible"):
        ShardedBatches(data, 10, seed=0, rank=0, world_size=3)


def test_context_random_draws_are_rank_slices_of_the_global_draw(monkeypatch):
    from onestep.environments import distributed as d

    draws = {}
    for world in (1, 2):
        for rank in range(world):
            monkeypatch.setattr(d, "rank", lambda r=rank: r)
            monkeypatch.setattr(d, "world_size", lambda w=world: w)
            ctx = LoopContext(seed=5, batch_size=8, device=torch.device("cpu"))
            ctx.begin_step(11, 88)
            local = 8 // world
            draws[world, rank] = (ctx.randn(local, 3, stream="a"), ctx.randn(local, 3, stream="a"),
                                  ctx.rand(local, stream="b"), ctx.randint(7, local, stream="c"))
    for i in range(4):
        assert torch.equal(torch.cat([draws[2, 0][i], draws[2, 1][i]]), draws[1, 0][i])
    assert not torch.equal(draws[1, 0][0], draws[1, 0][1]), "two draws of one stream in a step differ"
    ctx.begin_step(12, 96)
    assert not torch.equal(ctx.randn(4, 3, stream="a"), draws[2, 1][0]), "another step, other numbers"


def test_env_detection_torchrun_and_slurm():
    env = detect_env({"RANK": "3", "WORLD_SIZE": "8", "LOCAL_RANK": "1", "MASTER_ADDR": "10.0.0.2", "MASTER_PORT": "1234"})
    assert (env.rank, env.world_size, env.local_rank, env.master_addr, env.master_port, env.source) == \
        (3, 8, 1, "10.0.0.2", 1234, "torchrun")
    slurm = {"SLURM_PROCID": "5", "SLURM_NTASKS": "8", "SLURM_LOCALID": "1", "SLURM_JOB_ID": "4242",
             "SLURM_JOB_NODELIST": "gpu[007-008,012]"}
    env = detect_env(slurm)
    assert (env.rank, env.world_size, env.local_rank, env.master_addr, env.source) == (5, 8, 1, "gpu007", "slurm")
    assert env.master_port == 12000 + 4242 % 20000 == slurm_port("4242")
    assert detect_env({**slurm, "SLURM_JOB_NODELIST": "", "SLURM_LAUNCH_NODE_IPADDR": "10.1.1.1"}).master_addr == "10.1.1.1"
    assert first_slurm_host("node1,node2") == "node1" and first_slurm_host("a-b[3-4]") == "a-b3"
    assert detect_env({}).world_size == 1
    assert detect_env({"SLURM_PROCID": "0", "SLURM_NTASKS": "1"}).source == "single"  # one task: no group
