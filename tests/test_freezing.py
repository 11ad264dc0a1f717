"""GDD-I / D2O-F freezing levels on EDM's CIFAR-10 DDPM++ layout (built on the meta device)."""
import re

import pytest
import torch

from onestep.methods.core.config import ConfigError
from onestep.methods.freezing import FREEZE_LEVELS, apply_freeze_level, freezing_summary
from onestep.methods.zoo import build_network

# Independent of the zoo's role code: EDM UNetBlock attribute names per ablation column.
PATTERNS = {
    "conv": re.compile(r"\.(conv0|conv1|proj)\.(weight|bias)$"),
    "qkv": re.compile(r"\.qkv\.(weight|bias)$"),
    "skip": re.compile(r"\.skip\.(weight|bias)$"),
    "norm": re.compile(r"\.(norm0|norm1|norm2|affine)\.(weight|bias)$"),
}


@pytest.fixture(scope="module")
def ddpmpp():
    with torch.device("meta"):
        return build_network("edm-cifar10-32x32-uncond-vp")


def _block_param(name):  # parameters inside UNet blocks (enc/dec blocks), not io/aux/mapping layers
    return re.match(r"model\.(enc|dec)\.\d+x\d+_(block\d+|down|up|in0|in1)\.", name) is not None


def test_published_parameter_shares(ddpmpp):
    s = freezing_summary(ddpmpp, "none")
    assert s["params_total"] == pytest.approx(55.7e6, rel=0.01)  # EDM DDPM++ CIFAR-10: 55.7M
    shares = s["role_shares"]
    # Paper 000 Table 2: norm 7.9%, conv 85.8%, qkv 2.1%, skip 4.0% (conv: zoo grouping gives 85.4%).
    assert shares["norm"] == pytest.approx(0.079, abs=0.001)
    assert shares["qkv"] == pytest.approx(0.021, abs=0.001)
    assert shares["skip"] == pytest.approx(0.040, abs=0.001)
    assert shares["conv"] == pytest.approx(0.858, abs=0.005)


@pytest.mark.parametrize("level", list(FREEZE_LEVELS))
def test_levels_freeze_exactly_the_intended_parameters(ddpmpp, level):
    frozen = set(apply_freeze_level(ddpmpp, level))
    cols = FREEZE_LEVELS[level]
    want = {n for n, _ in ddpmpp.named_parameters()
            if _block_param(n) and any(PATTERNS[c].search(n) for c in cols)}
    assert frozen == want
    for n, p in ddpmpp.named_parameters():
        assert p.requires_grad == (n not in want), n
    # norms, mapping network and input/output layers always stay tuned
    assert not any(PATTERNS["norm"].search(n) or ".map_" in n or "aux" in n for n in frozen)
    s = freezing_summary(ddpmpp, level)
    share = sum(s["role_shares"].get(c, 0) for c in cols)
    assert s["trainable_share"] == pytest.approx(1 - share, abs=1e-5)
    apply_freeze_level(ddpmpp, "none")


def test_gdd_i_default_row_and_bad_level(ddpmpp):
    s = freezing_summary(ddpmpp, "none")
    apply_freeze_level(ddpmpp, "conv")
    s = freezing_summary(ddpmpp, "conv")
    assert s["frozen_roles"] == ["conv"]
    assert s["trainable_share"] == pytest.approx(1 - s["role_shares"]["conv"], abs=1e-5)
    apply_freeze_level(ddpmpp, "none")
    with pytest.raises(ConfigError, match="conv_qkv"):
        apply_freeze_level(ddpmpp, "conv+qkv")
