"""Min-max normalization and forward hooks on the zoo's U-Nets (no network copies)."""
import pytest
import torch

from onestep.benchmarks.analyses.activations import minmax_normalize, trajectory_activations
from onestep.benchmarks.analyses.hooks import RecordingDenoiser, record_blocks, unet_blocks
from onestep.methods.solvers import solve
from onestep.methods.solvers.schedules import edm_sigmas
from onestep.methods.zoo import build_network
from onestep.methods.zoo.layers import UNetBlock


def test_minmax_normalization_bounds():
    v = torch.randn(5, 40, generator=torch.Generator().manual_seed(0)) * 7 + 3
    n = minmax_normalize(v, dim=1)
    assert torch.equal(n.amin(dim=1), torch.zeros(5, dtype=torch.float64))
    assert torch.equal(n.amax(dim=1), torch.ones(5, dtype=torch.float64))
    assert ((n >= 0) & (n <= 1)).all()
    # order within a row is kept; a constant row maps to 0
    assert torch.equal(n.argsort(dim=1), v.argsort(dim=1))
    assert torch.equal(minmax_normalize(torch.full((1, 4), 2.0)), torch.zeros(1, 4, dtype=torch.float64))
    assert torch.allclose(minmax_normalize(torch.tensor([[1.0, 3.0, 2.0]])), torch.tensor([[0.0, 1.0, 0.5]], dtype=torch.float64))


@pytest.fixture(scope="module")
def net():
    torch.manual_seed(0)
    return build_network("digits-8x8-cond").eval()


def test_hooks_capture_one_tensor_per_block_per_step_with_expected_shapes(net):
    blocks = unet_blocks(net)
    assert len(blocks) == sum(isinstance(m, UNetBlock) for m in net.modules())
    b, steps = 3, 5
    z = torch.randn(b, 1, 8, 8, generator=torch.Generator().manual_seed(1))
    labels = torch.eye(10)[:b]
    sigmas = edm_sigmas(steps)
    rec_d = RecordingDenoiser(net)
    with torch.no_grad(), record_blocks(net, "io") as io, record_blocks(net, "conv1") as c1:
        solve("euler", rec_d, z.double() * sigmas[0], sigmas, labels)
    assert len(io.calls) == len(c1.calls) == len(rec_d.calls) == steps
    for call_io, call_c1 in zip(io.calls, c1.calls):
        assert set(call_io) == set(call_c1) == {i.name for i, _ in blocks}
        for info, mod in blocks:
            xin, xout = call_io[info.name]
            assert xin.shape == (b, mod.in_channels, xin.shape[-1], xin.shape[-1])
            assert xout.shape == (b, mod.out_channels, info.resolution, info.resolution)
            assert call_c1[info.name].shape == (b, mod.out_channels, info.resolution, info.resolution)
    # the recorded D(x) is exactly the network's output (hooks change nothing)
    x, s, out = rec_d.calls[0]
    with torch.no_grad():
        assert torch.equal(out, net(x.double(), torch.tensor(s, dtype=torch.float64), labels).float())
    # hooks are gone afterwards
    assert all(not m._forward_hooks for m in net.modules())


def test_trajectory_activations_shape_and_depth_order(net):
    z = torch.randn(2, 1, 8, 8, generator=torch.Generator().manual_seed(3))
    blocks, sigmas, acts = trajectory_activations(net, z, torch.eye(10)[:2], 16)
    assert acts.shape == (len(blocks), 16) and sigmas.shape == (16,)
    assert float(sigmas[0]) == pytest.approx(80.0) and float(sigmas[-1]) > 0.002  # T(16..1, 16)
    assert (acts > 0).all()
    enc = [b for b in blocks if b.part == "enc"]
    dec = [b for b in blocks if b.part == "dec"]
    assert [b.depth for b in enc] == list(range(len(enc)))
    assert [b.depth for b in dec] == list(range(len(dec)))[::-1]
    assert dec[-1].resolution == 8 and dec[0].resolution == 4  # decoder ends at full resolution


def test_hooks_reject_a_network_without_unet_blocks():
    with pytest.raises(TypeError, match="UNetBlock"):
        with record_blocks(torch.nn.Linear(2, 2)):
            pass
