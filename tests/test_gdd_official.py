"""GDD / D2O against the official code's structure (Zyriix/GDD pg_modules, training_loop.py,
loss.py, diffaug.py, train.sh): hand values typed from reading that code, never copied code.

Feature networks are built with random weights in their real architecture (no downloads)."""
import math

import pytest
import torch
from torch import nn

from onestep.methods.discriminators import DiscriminatorConfig, build_discriminator, diff_augment
from onestep.methods.discriminators.feature_networks import (FrozenFeatureNetwork, _deit_extract,
                                                             load_timm_feature_network, set_double_backward_attention)
from onestep.methods.discriminators.projected import (DownBlock, PatchHead, ProjectedDiscriminator, RandomProjection,
                                                      ViTReassemble)


@pytest.fixture(scope="module")
def cifar_disc():
    torch.manual_seed(0)
    return build_discriminator(DiscriminatorConfig(feature_networks=["vgg16_bn", "efficientnet_lite0"], random_weights=True),
                               32, 3, 0)


@pytest.fixture(scope="module")
def face_disc_cond():
    torch.manual_seed(0)
    return build_discriminator(DiscriminatorConfig(feature_networks=["deit_base", "efficientnet_lite0"], random_weights=True),
                               64, 3, 1000)


def test_backbone_splits_match_the_official_strides_and_channels(cifar_disc, face_disc_cond):
    # VGG16-BN features[:13] / [13:23] / [23:33] / [33:43] at 224: strides 2/4/8/16, 128/256/512/512
    # channels; EfficientNet-lite0 strides 4..32; DeiT blocks 2/5/8/11 as 768 x 14 x 14 grids.
    # (the discriminators probed each network once at construction: shapes checked here)
    vgg, lite = cifar_disc.features
    deit = face_disc_cond.features[0]
    assert vgg.channels == [128, 256, 512, 512] and lite.channels == [24, 40, 112, 320] and deit.channels == [768] * 4
    from onestep.methods.discriminators.feature_networks import VGG16_BN_SPLITS

    kinds = [type(m).__name__ for m in vgg.net]
    assert VGG16_BN_SPLITS == (13, 23, 33, 43) and len(kinds) == 44
    assert [kinds[i] for i in (13, 23, 33, 43)] == ["MaxPool2d"] * 4  # each split starts with a pool: 112/56/28/14
    assert kinds[:13].count("MaxPool2d") == 1 and kinds[:13].count("Conv2d") == 4


def test_projection_widths_sizes_and_default_init(cifar_disc, face_disc_cond):
    x = torch.zeros(1, 3, 32, 32)
    with torch.no_grad():
        mixed = [tuple(m.shape[1:]) for m in cifar_disc.projections[0](cifar_disc.features[0](x))]
    # CSM output widths 64/64/128/256 at twice the raw resolution
    assert mixed == [(64, 224, 224), (64, 112, 112), (128, 56, 56), (256, 28, 28)]
    ccm = cifar_disc.projections[0].ccm
    assert [c.out_channels for c in ccm] == [64, 128, 256, 512] and [c.in_channels for c in ccm] == [128, 256, 512, 512]
    csm = [b.out_conv for b in cifar_disc.projections[0].csm]
    assert [(c.in_channels, c.out_channels) for c in csm] == [(64, 64), (128, 64), (256, 128), (512, 256)]
    for conv in list(ccm) + csm:  # PyTorch default init: U(-1/sqrt(fan_in), 1/sqrt(fan_in)), not Kaiming-normal
        bound = 1 / math.sqrt(conv.in_channels)
        w = conv.weight.abs().max().item()
        assert 0.9 * bound < w <= bound and conv.bias.abs().max().item() <= bound
    assert not any(p.requires_grad for p in cifar_disc.projections.parameters())
    # DeiT: DPT reassembly into a 56/28/14/7 pyramid of 96/192/384/768 channels
    re = face_disc_cond.projections[0].reassemble
    assert isinstance(re, ViTReassemble)
    with torch.no_grad():
        pyr = re([torch.zeros(1, 768, 14, 14)] * 4)
    assert [tuple(p.shape[1:]) for p in pyr] == [(96, 56, 56), (192, 28, 28), (384, 14, 14), (768, 7, 7)]


def test_heads_are_downblocks_with_patch_logits(cifar_disc, face_disc_cond):
    # 224 input, nominal sizes 128/64/32/16 down to 8, 4x4 conv: VGG 224/112/56/28 -> 11x11, others -> 4x4
    assert cifar_disc.logit_sizes == [[11] * 4, [4] * 4]
    assert face_disc_cond.logit_sizes == [[4] * 4, [4] * 4]
    head0 = cifar_disc.heads[0][0]
    flow = [(b[0].in_channels, b[0].out_channels) for b in head0.body]
    assert flow == [(64, 64), (64, 128), (128, 256), (256, 512)]  # Projected GAN's channel table
    assert [len(h.body) for h in cifar_disc.heads[0]] == [4, 3, 2, 1]
    for b in head0.body:
        assert isinstance(b, DownBlock) and isinstance(b[1], nn.BatchNorm2d) and hasattr(b[0], "weight_orig")
        assert (b[0].kernel_size, b[0].stride, b[0].padding) == ((4, 4), (2, 2), (1, 1))
    assert head0.out.kernel_size == (4, 4) and head0.out.bias is None and hasattr(head0.out, "weight_orig")


def test_class_conditioning_uses_an_embedding_with_lrelu_projection(face_disc_cond):
    head = face_disc_cond.heads[1][0]
    emb = head.cls_embed
    assert tuple(emb.embed.weight.shape) == (1000, 320) and head.out.out_channels == 64
    assert face_disc_cond.embedding_source == "random"  # no file here: labelled random
    onehot = torch.nn.functional.one_hot(torch.tensor([3, 7]), 1000).float()
    e = emb.embed.weight[[3, 7]]
    want = torch.nn.functional.leaky_relu(e @ emb.proj_weight.t() / math.sqrt(320) + emb.proj_bias, 0.2) * math.sqrt(2)
    assert torch.allclose(emb(onehot), want, atol=1e-6)


def test_pretrained_class_embedding_is_found_like_other_weights(tmp_path):
    from safetensors.torch import save_file

    from onestep.methods.discriminators import load_class_embedding

    w = torch.randn(1000, 320)
    save_file({"weight": w}, str(tmp_path / "tf_efficientnet_lite0_embed.safetensors"))
    got, source = load_class_embedding(DiscriminatorConfig(weights_dir=str(tmp_path)))
    assert torch.equal(got, w) and source.endswith("tf_efficientnet_lite0_embed.safetensors")
    assert load_class_embedding(DiscriminatorConfig(weights_dir=str(tmp_path / "none")))[1] == "random"
    with pytest.raises(FileNotFoundError):
        load_class_embedding(DiscriminatorConfig(weights_dir=str(tmp_path / "none"), class_embedding="pretrained"))
    save_file({"weight": torch.zeros(10, 3)}, str(tmp_path / "tf_efficientnet_lite0_embed.safetensors"))
    with pytest.raises(ValueError, match="1000, 320"):
        load_class_embedding(DiscriminatorConfig(weights_dir=str(tmp_path)))


def test_augmentation_is_fresh_for_each_feature_network():
    seen = []

    def small_network():
        net = nn.Conv2d(3, 4, 3, padding=1)
        net.register_forward_pre_hook(lambda m, inp: seen.append(inp[0].clone()))
        return FrozenFeatureNetwork("small", net, lambda n, x: [n(x)], input_size=None, mean=[0.5] * 3, std=[0.5] * 3,
                                    in_channels=3)

    disc = ProjectedDiscriminator([small_network(), small_network()], 8, 3, width_scale=0.125)
    seen.clear()
    g = torch.Generator().manual_seed(0)
    aug = lambda x: diff_augment(x, ("color",), lambda *s: torch.rand(*s, generator=g))
    logits = disc(torch.rand(2, 3, 8, 8), None, aug)
    assert len(seen) == 2 and not torch.equal(seen[0], seen[1])
    # one (B, N) tensor per feature network: its heads' patch maps concatenated per sample
    assert [tuple(l.shape) for l in logits] == [(2, sum(s * s for s in disc.logit_sizes[0]))] * 2


def test_cutout_ratio_is_0_2():
    # official rand_cutout(ratio=0.2): int(10 * 0.2 + 0.5) = 2 -> a 2x2 square on a 10x10 image
    cut = diff_augment(torch.ones(1, 1, 10, 10), ("cutout",), lambda *s: torch.full(s, 0.5))
    assert int((cut == 0).sum()) == 4


def _tiny_deit_network():
    import timm

    # DeiT's code path (distilled tokens, 12 blocks, timm Attention) at width 48
    net = timm.create_model("deit_tiny_distilled_patch16_224", pretrained=False, embed_dim=48, num_heads=2, img_size=32)
    return FrozenFeatureNetwork("deit_tiny", net, _deit_extract, input_size=32, mean=[0.5] * 3, std=[0.5] * 3,
                                in_channels=3, untrained=True, vit_tokens=True), net


def test_deit_r1_double_backward_needs_and_has_the_math_attention():
    from onestep.methods.losses import r1_penalty

    torch.manual_seed(0)
    fn, net = _tiny_deit_network()
    disc = ProjectedDiscriminator([fn], 16, 3, width_scale=0.125)
    x = (torch.rand(1, 3, 16, 16) * 2 - 1).requires_grad_(True)
    penalty = r1_penalty(x, disc(x))
    if any(getattr(m, "fused_attn", False) for m in net.modules()):
        with pytest.raises(RuntimeError, match="derivative|not implemented"):
            penalty.backward()  # fused SDPA: no double backward (issue 10, point 9)
    assert set_double_backward_attention(net) == 12
    x = (torch.rand(1, 3, 16, 16) * 2 - 1).requires_grad_(True)
    r1_penalty(x, disc(x)).backward()
    assert all(p.grad is not None for p in disc.heads.parameters() if p.requires_grad)



def test_real_deit_uses_the_math_attention_when_r1_is_on(face_disc_cond):
    assert not any(getattr(m, "fused_attn", False) for m in face_disc_cond.features[0].net.modules())


class _LinearD(nn.Module):
    """D(x) = <w, x> per sample: one feature network, one position."""

    def __init__(self, w):
        super().__init__()
        self.w = nn.Parameter(w.clone())

    def forward(self, images, labels=None, augment=None):
        return [images.flatten(1) @ self.w.view(-1, 1)]


class _ZeroG(nn.Module):
    def __init__(self):
        super().__init__()
        self.a = nn.Parameter(torch.ones(()))

    def forward(self, z, c=None):
        return z * 0 * self.a  # fake = 0: its logits and their gradient wrt w vanish


def test_r1_to_adversarial_gradient_ratio_matches_a_hand_computation(monkeypatch):
    from onestep.benchmarks.training import LoopContext, instantiate_method
    from onestep.methods.plugin import Batch, DataSpec
    from onestep.methods.plugins import gdd as gdd_mod
    from onestep.methods.zoo import build_network

    torch.manual_seed(0)
    w = torch.randn(64) * 0.3
    monkeypatch.setattr(gdd_mod, "build_discriminator", lambda *a, **k: _LinearD(w))
    teacher = build_network("digits-8x8-cond").eval()
    m, _ = instantiate_method("gdd", "smoke", {"method.r1_gamma": 1e-2}, teacher=teacher, data_spec=DataSpec(8, 1, 0))
    m._gen = _ZeroG()
    m.opt_g = torch.optim.Adam(m._gen.parameters())
    grads = []
    ctx = LoopContext(0, 4, torch.device("cpu"), "fp32", None, "gdd")
    real_step = ctx.optimizer_step

    def record(opt, params, clip=None):
        params = list(params)
        grads.append([(p.grad.detach().clone(), p.detach().clone()) for p in params])
        real_step(opt, params, clip)

    ctx.optimizer_step = record
    ctx.begin_step(16, 64)
    x = torch.rand(4, 1, 8, 8) * 2 - 1
    m.step(Batch(x, None), ctx)
    assert len(grads) == 3  # G, D main, lazy R1: three optimizer steps
    (g_adv, _), (g_r1, w_r1) = grads[1][0], grads[2][0]  # R1 sees w after the main step
    # by hand: official D loss = sum over the per-GPU batch (4) of softplus(-<w, x_b>) (+ fakes: 0)
    #   d/dw = -sum_b sigmoid(-<w, x_b>) x_b ;  R1 = gamma/2 * 16 * mean_b ||w||^2 -> d/dw = 16 gamma w
    flat = x.flatten(1).double()
    wd = w.double()
    want_adv = -sum((1 / (1 + math.exp(float(flat[b] @ wd)))) * flat[b] for b in range(4))
    want_r1 = 16 * 1e-2 * w_r1.double()
    assert torch.allclose(g_adv.double(), want_adv, rtol=1e-4, atol=1e-7)
    assert torch.allclose(g_r1.double(), want_r1, rtol=1e-5)
    ratio = g_r1.norm() / g_adv.norm()
    assert float(ratio) == pytest.approx(float(want_r1.norm() / want_adv.norm()), rel=1e-4)
