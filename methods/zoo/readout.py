"""Read-outs of a denoiser's encoder, used as discriminators without new parameters.

SiDA (paper 002; mingyuanzhou/SiD `sida_networks.py`) takes the output of the LAST encoder
block of the fake score network (the U-Net middle and decoder blocks are not run) and averages
it over channels: a (B, 1, h, w) map of logits. DMD2 reads the same tensor (its `bottleneck`)
through a small conv head instead. Both see the denoising pass's c_in * x and embedding.
"""
from __future__ import annotations

import torch
from torch import nn


def _check(net: nn.Module) -> None:
    if not hasattr(net, "denoise_and_encode"):
        raise TypeError(f"encoder read-out needs a zoo preconditioner (EDMPrecond, ...), got {type(net).__name__}")


def encoder_features(net: nn.Module, x: torch.Tensor, sigma, class_labels=None, **model_kwargs) -> torch.Tensor:
    """The last encoder block's output (B, C, h, w) in float32; the decoder is not run."""
    _check(net)
    return net.denoise_and_encode(x, sigma, class_labels, read_out="encoder", **model_kwargs)


def sida_encoder_map(net: nn.Module, x: torch.Tensor, sigma, class_labels=None, **model_kwargs) -> torch.Tensor:
    """SiDA's discriminator logits: channel mean of the last encoder block's output, (B, 1, h, w)."""
    return encoder_features(net, x, sigma, class_labels, **model_kwargs).mean(dim=1, keepdim=True)


def denoise_with_encoder_map(net: nn.Module, x: torch.Tensor, sigma, class_labels=None, **model_kwargs):
    """(D(x; sigma), sida_encoder_map) from one pass (SiDA's 'encoder_decoder')."""
    _check(net)
    denoised, encoded = net.denoise_and_encode(x, sigma, class_labels, read_out="encoder_decoder", **model_kwargs)
    return denoised, encoded.mean(dim=1, keepdim=True)


def set_dropout(net: nn.Module, p: float) -> nn.Module:
    """Set the dropout probability of every U-Net block (and the recorded config) in place.

    The official one-step students train with dropout 0 (GDD/D2O train.sh, DMD2's networks),
    others with the teacher's (SiDA, SFD); this is the one way a plugin changes it."""
    if not 0 <= p < 1:
        raise ValueError(f"dropout must lie in [0, 1), got {p}")
    from .layers import UNetBlock

    for module in net.modules():
        if isinstance(module, UNetBlock):
            module.dropout = p
        kwargs = getattr(module, "init_kwargs", None)
        if isinstance(kwargs, dict) and "dropout" in kwargs and not callable(kwargs):
            kwargs["dropout"] = p
    return net
