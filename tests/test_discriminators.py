"""Projected / VGG16 discriminators, timm feature-network loading, DiffAugment."""
import pytest
import torch

from onestep.methods.core.config import ConfigError
from onestep.methods.discriminators import DiscriminatorConfig, build_discriminator, diff_augment, parse_policy
from onestep.methods.discriminators.feature_networks import load_timm_feature_network, wrap_digits_feature_network
from onestep.methods.discriminators.projected import ProjectedDiscriminator
from onestep.methods.discriminators.vgg_baseline import VGG16Discriminator
from onestep.methods.feature_nets.digits import DigitsFeatureNet


@pytest.fixture(scope="module")
def lite0_file(tmp_path_factory):
    """Random tf_efficientnet_lite0 weights saved exactly as timm's state dict (real format)."""
    import timm
    from safetensors.torch import save_file

    torch.manual_seed(0)
    net = timm.create_model("tf_efficientnet_lite0", pretrained=False)
    path = tmp_path_factory.mktemp("weights") / "tf_efficientnet_lite0.safetensors"
    save_file({k: v.contiguous() for k, v in net.state_dict().items()}, str(path))
    return path, net


def test_timm_feature_network_loads_local_weights(lite0_file):
    import timm

    path, full = lite0_file
    fn = load_timm_feature_network("efficientnet_lite0", weights_dir=path.parent)
    assert fn.source == str(path) and not fn.untrained
    ref = timm.create_model("tf_efficientnet_lite0", pretrained=False, features_only=True, out_indices=(1, 2, 3, 4))
    ref.load_state_dict({k: v for k, v in full.state_dict().items() if k in ref.state_dict()})
    ref.eval()
    x = torch.rand(1, 3, 16, 16) * 2 - 1
    feats = fn(x)
    x224 = torch.nn.functional.interpolate(x, size=(224, 224), mode="bilinear", align_corners=False)
    want = ref((x224 + 1) / 2 * 2 - 1)  # lite0 mean = std = 0.5: normalised input equals x
    assert [f.shape[1] for f in feats] == [24, 40, 112, 320]
    for a, b in zip(feats, want):
        assert torch.allclose(a, b, atol=1e-5)
    assert list(fn.parameters()) == [] and fn.state_dict() == {}  # frozen weights are not checkpointed


def test_timm_feature_network_missing_or_wrong_weights(tmp_path, lite0_file):
    with pytest.raises(FileNotFoundError, match=r"tf_efficientnet_lite0\.safetensors"):
        load_timm_feature_network("efficientnet_lite0", weights_dir=tmp_path)
    from safetensors.torch import save_file

    bad = tmp_path / "tf_efficientnet_lite0.safetensors"
    save_file({"conv_stem.weight": torch.zeros(3, 3)}, str(bad))
    with pytest.raises(ValueError, match="not a valid 'tf_efficientnet_lite0' state dict"):
        load_timm_feature_network("efficientnet_lite0", weights_dir=tmp_path)
    with pytest.raises(ConfigError, match="efficientnet_lite0"):
        build_discriminator(DiscriminatorConfig(feature_networks=["efficientnet-lite0"]), 32, 3, 0)


def _digits_disc(label_dim=0, seed=0):
    torch.manual_seed(1)
    fn = wrap_digits_feature_network(DigitsFeatureNet(), in_channels=1)
    return ProjectedDiscriminator([fn], resolution=8, channels=1, label_dim=label_dim, seed=seed, width_scale=0.25)


def test_width_scale_narrows_the_heads_too():
    from onestep.methods.discriminators.projected import HEAD_CHANNELS

    torch.manual_seed(1)
    fn = wrap_digits_feature_network(DigitsFeatureNet(), in_channels=1)
    widths = {}
    for scale in (1.0, 0.25):
        disc = ProjectedDiscriminator([fn], resolution=8, channels=1, width_scale=scale)
        convs = [m for m in disc.heads[0][0].body.modules() if isinstance(m, torch.nn.Conv2d)]
        widths[scale] = [c.out_channels for c in convs]
    # the first head runs 32 -> 16 -> 8: official widths HEAD_CHANNELS[16], [8] at scale 1
    assert widths[1.0] == [HEAD_CHANNELS[16], HEAD_CHANNELS[8]] == [256, 512]
    assert widths[0.25] == [64, 128]


def test_projected_discriminator_heads_gradients_and_frozen_parts():
    disc = _digits_disc()
    x = (torch.rand(4, 1, 8, 8) * 2 - 1).requires_grad_(True)
    logits = disc(x)
    # one (B, N) tensor per feature network: its three heads' 5x5 patch maps (digits 16/8/4 maps,
    # doubled by CSM to 32/16/8, DownBlocks to 8, 4x4 conv) concatenated
    assert len(logits) == 1 and logits[0].shape == (4, 3 * 25) and disc.logit_sizes == [[5, 5, 5]]
    sum(l.sum() for l in logits).backward()
    assert x.grad is not None and x.grad.abs().sum() > 0  # gradients reach the images through frozen features
    trainable = {n for n, p in disc.named_parameters() if p.requires_grad}
    assert trainable and all(n.startswith("heads.") for n in trainable)  # CCM/CSM fixed, features frozen
    assert not any(k.startswith("features.") for k in disc.state_dict())
    # the fixed random projections depend only on the seed
    other, third = _digits_disc(seed=0), _digits_disc(seed=1)
    a, b, c = (d.projections[0].ccm[0].weight for d in (disc, other, third))
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_projected_discriminator_class_projection():
    disc = _digits_disc(label_dim=10)
    x = torch.rand(2, 1, 8, 8) * 2 - 1
    y0 = torch.nn.functional.one_hot(torch.tensor([0, 0]), 10).float()
    y1 = torch.nn.functional.one_hot(torch.tensor([1, 1]), 10).float()
    disc.eval()  # BatchNorm running statistics: the two calls see the same normalisation
    l0, l1 = disc(x, y0), disc(x, y1)
    assert not torch.allclose(torch.cat(l0, 1), torch.cat(l1, 1))
    with pytest.raises(ValueError, match="labels"):
        disc(x)


def test_vgg16_baseline(tmp_path, random_vgg16_weights):
    with pytest.raises(FileNotFoundError, match="vgg16"):
        VGG16Discriminator(weights=str(tmp_path / "vgg16-397923af.pth"))
    torch.save({"features.0.weight": torch.zeros(1)}, tmp_path / "bad.pth")
    with pytest.raises(ValueError, match="not a torchvision VGG16 state dict"):
        VGG16Discriminator(weights=str(tmp_path / "bad.pth"))
    # random weights in torchvision's real file format (shared fixture)
    d = VGG16Discriminator(label_dim=0, input_size=32, weights=str(random_vgg16_weights))
    out = d(torch.rand(2, 3, 32, 32) * 2 - 1)
    assert len(out) == 1 and out[0].shape == (2, 1)
    assert all(p.requires_grad for p in d.parameters())  # baseline: whole VGG is fine-tuned
    # head as the released PretrainedD (network_d.py): fc 512->512 + bias, SiLU, out 512->1 without
    # bias, kaiming-normal weights (std 1/sqrt 512) and zero bias; LPIPS' ScalingLayer on the input
    from lpips import ScalingLayer

    assert (d.fc.in_features, d.fc.out_features, d.out.out_features, d.out.bias) == (512, 512, 1, None)
    assert isinstance(d.act, torch.nn.SiLU) and torch.equal(d.fc.bias, torch.zeros(512))
    assert float(d.fc.weight.detach().std()) == pytest.approx(512 ** -0.5, rel=0.02)
    assert float(d.out.weight.detach().std()) == pytest.approx(512 ** -0.5, rel=0.2)
    x = torch.rand(2, 3, 32, 32) * 2 - 1
    assert torch.equal(d.scale(x), ScalingLayer()(x))
    trunk_in = []
    d.trunk.register_forward_pre_hook(lambda mod, args: trunk_in.append(args[0]))
    d(x)
    assert torch.allclose(trunk_in[0], ScalingLayer()(x), atol=1e-6)  # no other normalisation


def test_diffaugment():
    assert parse_policy("color, translation,cutout") == ("color", "translation", "cutout")
    with pytest.raises(ValueError, match="translation"):
        parse_policy("translate")
    g = torch.Generator().manual_seed(0)
    rand = lambda *s: torch.rand(*s, generator=g)
    x = torch.rand(4, 3, 8, 8, requires_grad=True)
    y = diff_augment(x, ("color", "translation", "cutout"), rand)
    assert y.shape == x.shape
    y.sum().backward()
    assert x.grad is not None  # differentiable
    # translation by zero (rand = 0.5 -> shift 0) is the identity
    ident = diff_augment(x.detach(), ("translation",), lambda *s: torch.full(s, 0.5))
    assert torch.equal(ident, x.detach())
    # cutout zeroes a square of 0.2 x the side (official ratio): int(8 * 0.2 + 0.5) = 2
    cut = diff_augment(torch.ones(1, 1, 8, 8), ("cutout",), lambda *s: torch.full(s, 0.5))
    assert int((cut == 0).sum()) == 4


@pytest.mark.parametrize("start,end,n_blocks,size", [(128, 8, 4, 11), (16, 8, 1, 11), (32, 8, 2, 4), (4, 4, 0, 3), (2, 2, 0, 2)])
def test_patch_head_depth_and_logit_size(start, end, n_blocks, size):
    from onestep.methods.discriminators.projected import PatchHead

    # Projected GAN's SingleDisc: log2(start / end) DownBlocks, then a 4x4 conv (end >= 8) or
    # max(1, end // 2); actual input 28 (VGG level 3 at 224) -> 14 -> 11, 56 -> 28 -> 14 -> 11 ...
    actual = {(128, 8): 224, (16, 8): 28, (32, 8): 28, (4, 4): 4, (2, 2): 2}[(start, end)]
    head = PatchHead(8, start, end)
    assert len(head.body) == n_blocks
    assert head(torch.zeros(2, 8, actual, actual), None).shape == (2, size * size)
