"""The fake score network shared by SiD / SiDA / SiD2A (f_psi) and DMD / DMD2 (mu_fake).

Both families keep a trainable copy of the teacher that tracks the generator's distribution
by denoising score matching on (detached) generator samples, and read the frozen teacher as
the real score. What differs per family lives in `onestep.methods.losses` (noise-level
distribution, weighting, totals); this module owns what is the same:

- construction: a deep copy of the teacher's weights, trainable (SiD `sida_training_loop.py`
  `deepcopy(teacher).train()`; DMD Alg. 1 line 2 mu_fake <- mu_real), and re-initialisation
  from the teacher (SiD2A starts its fake score afresh while the generator continues);
- modes: train mode (dropout on) only during its own update, eval mode and frozen parameters
  when it serves as the critic in the generator update (gradients still reach its INPUT);
- read-outs without new parameters: the denoised output, SiDA's encoder map and DMD2's
  bottleneck features, from one pass where both are needed (`onestep.methods.zoo.readout`).
"""
from __future__ import annotations

import contextlib
import copy

import torch
from torch import nn

from .zoo.readout import denoise_with_encoder_map, encoder_features, set_dropout, sida_encoder_map


def frozen_teacher(teacher: nn.Module) -> nn.Module:
    """The real score: eval mode, no parameter gradients (inputs still get gradients)."""
    return teacher.eval().requires_grad_(False)


class FakeScore(nn.Module):
    """A trainable copy of an EDM denoiser: D_fake(x, sigma, class_labels) -> x0_hat."""

    def __init__(self, teacher: nn.Module, dropout: float | None = None):
        super().__init__()
        if not hasattr(teacher, "denoise_and_encode"):
            raise TypeError(f"FakeScore needs a zoo preconditioner as teacher, got {type(teacher).__name__}")
        self.net = copy.deepcopy(teacher).requires_grad_(True)
        if dropout is not None:
            set_dropout(self.net, dropout)
        self.net.eval()

    def reinit_from(self, teacher: nn.Module) -> "FakeScore":
        """Reset the weights to the teacher's (SiD2A: fake score re-initialised, generator kept)."""
        self.net.load_state_dict(teacher.state_dict(), strict=True)
        return self

    # --- modes ------------------------------------------------------------------------------
    @contextlib.contextmanager
    def updating(self):
        """During the fake score's own update: train mode (dropout as configured)."""
        self.net.train()
        try:
            yield self
        finally:
            self.net.eval()

    @contextlib.contextmanager
    def as_critic(self):
        """During the generator update: eval mode, parameters frozen (no parameter grads)."""
        flags = [p.requires_grad for p in self.net.parameters()]
        self.net.eval().requires_grad_(False)
        try:
            yield self
        finally:
            for p, f in zip(self.net.parameters(), flags):
                p.requires_grad_(f)

    # --- read-outs --------------------------------------------------------------------------
    def forward(self, x: torch.Tensor, sigma, class_labels=None, **model_kwargs) -> torch.Tensor:
        return self.net(x, sigma, class_labels, **model_kwargs)

    def denoise_with_map(self, x: torch.Tensor, sigma, class_labels=None, **model_kwargs):
        """(denoised, SiDA encoder map (B, 1, h, w)) from one pass."""
        return denoise_with_encoder_map(self.net, x, sigma, class_labels, **model_kwargs)

    def encoder_map(self, x: torch.Tensor, sigma, class_labels=None, **model_kwargs) -> torch.Tensor:
        """SiDA's encoder map alone (the decoder is not run): the real branch of its D loss."""
        return sida_encoder_map(self.net, x, sigma, class_labels, **model_kwargs)

    def bottleneck(self, x: torch.Tensor, sigma, class_labels=None, **model_kwargs) -> torch.Tensor:
        """The last encoder block's output (B, C, h, w): what DMD2's GAN head reads."""
        return encoder_features(self.net, x, sigma, class_labels, **model_kwargs)

    def denoise_with_bottleneck(self, x: torch.Tensor, sigma, class_labels=None, **model_kwargs):
        return self.net.denoise_and_encode(x, sigma, class_labels, read_out="encoder_decoder", **model_kwargs)
