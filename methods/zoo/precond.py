"""Preconditioners: the Denoiser interface around a raw U-Net (docs/ARCHITECTURE.md).

D(x; sigma) = c_skip(sigma) x + c_out(sigma) F(c_in(sigma) x; c_noise(sigma)), with the
coefficients of EDM Table 1 (Karras et al. 2022) for VP, VE, iDDPM and EDM, and of the
consistency-model parameterization for the one-step generators of GDD/D2O (paper 000,
appendix B.4 "Parameterization"; paper 001, appendix). The raw network is the attribute
`model`, so state-dict keys start with `model.` exactly as in EDM's checkpoints.
"""
from __future__ import annotations


import inspect

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from ..core.config import ConfigError, suggest
from .dhariwal import DhariwalUNet
from .songunet import SongUNet

MODEL_TYPES: dict[str, type[nn.Module]] = {"SongUNet": SongUNet, "DhariwalUNet": DhariwalUNet}


def model_class(name: str) -> type[nn.Module]:
    try:
        return MODEL_TYPES[name]
    except KeyError:
        raise ConfigError(f"unknown model_type {name!r}{suggest(name, MODEL_TYPES)}; "
                          f"choose one of {sorted(MODEL_TYPES)}") from None


def accepted_kwargs(cls) -> set[str]:
    """Keyword names a zoo constructor takes (without self / **model_kwargs)."""
    return {p for p in inspect.signature(cls.__init__).parameters if p not in ("self", "model_kwargs")}


class Precond(nn.Module):
    """Shared plumbing: builds `model`, validates inputs, runs the net at the right precision.

    Subclasses define `coefficients(sigma) -> (c_skip, c_out, c_in, c_noise)` (tensors shaped
    like sigma) and may set `out_channels_factor` (iDDPM predicts 2x channels).
    """

    out_channels_factor = 1
    # Not used by VP/VE/iDDPM formulas, but part of the Denoiser contract: the std of data
    # scaled to [-1, 1] as EDM assumes (EDM section 5, sigma_data = 0.5).
    sigma_data = 0.5

    def __init__(self, img_resolution, img_channels, label_dim=0, use_fp16=False, model_type="SongUNet", **model_kwargs):
        super().__init__()
        self.img_resolution = img_resolution
        self.img_channels = img_channels
        self.label_dim = label_dim
        self.use_fp16 = use_fp16
        self.model_type = model_type
        self.model = model_class(model_type)(img_resolution=img_resolution, in_channels=img_channels,
                                             out_channels=img_channels * self.out_channels_factor,
                                             label_dim=label_dim, **model_kwargs)

    # -- the Denoiser interface -------------------------------------------------------------
    def forward(self, x, sigma, class_labels=None, force_fp32=False, **model_kwargs):
        return self.denoise_and_encode(x, sigma, class_labels, force_fp32, read_out="decoder", **model_kwargs)

    def denoise_and_encode(self, x, sigma, class_labels=None, force_fp32=False, read_out="encoder_decoder",
                           **model_kwargs):
        """The denoiser with the raw network's `read_out` (SongUNet.forward): 'decoder' gives
        D(x; sigma); 'encoder' the last encoder block's output (float32) without running the
        decoder; 'encoder_decoder' both, (D(x; sigma), encoder output), from one pass. The
        encoder sees the same c_in * x and embedding as the denoising pass (SiDA, DMD2)."""
        x = x.to(torch.float32)
        sigma = self._batch_sigma(sigma, x)
        labels = self._labels(class_labels, x)
        dtype = torch.float16 if (self.use_fp16 and not force_fp32 and x.device.type == "cuda") else torch.float32

        c_skip, c_out, c_in, c_noise = self.coefficients(sigma)
        if read_out == "decoder":  # the plain call keeps the network's own signature (external nets)
            F_x = self.model((c_in * x).to(dtype), c_noise.flatten(), class_labels=labels, **model_kwargs)
        else:
            out = self.model((c_in * x).to(dtype), c_noise.flatten(), class_labels=labels, read_out=read_out,
                             **model_kwargs)
            if read_out == "encoder":
                return out.to(torch.float32)
            F_x, encoded = out
        F_x = F_x[:, : self.img_channels].to(torch.float32)
        denoised = c_skip * x + c_out * F_x
        return denoised if read_out == "decoder" else (denoised, encoded.to(torch.float32))

    def round_sigma(self, sigma):
        return torch.as_tensor(sigma)

    def coefficients(self, sigma: torch.Tensor):
        raise NotImplementedError

    # -- helpers ----------------------------------------------------------------------------
    def _batch_sigma(self, sigma, x):
        sigma = torch.as_tensor(sigma, dtype=torch.float32, device=x.device)
        if sigma.numel() == 1:
            sigma = sigma.reshape(1).expand(x.shape[0])
        elif sigma.numel() != x.shape[0]:
            raise ValueError(f"{type(self).__name__}: got {sigma.numel()} sigmas for a batch of {x.shape[0]}; "
                             "pass one sigma per image or a single scalar")
        return sigma.reshape(-1, 1, 1, 1)

    def _labels(self, class_labels, x):
        if self.label_dim == 0:
            return None
        if class_labels is None:  # EDM: unlabelled call on a conditional net uses all-zero labels
            return torch.zeros([1, self.label_dim], device=x.device)
        class_labels = torch.as_tensor(class_labels, device=x.device)
        if class_labels.dim() == 1 and not class_labels.is_floating_point():  # integer class ids
            if class_labels.numel() and (class_labels.min() < 0 or class_labels.max() >= self.label_dim):
                raise ValueError(f"{type(self).__name__}: class ids must lie in [0, {self.label_dim}); "
                                 f"got range [{int(class_labels.min())}, {int(class_labels.max())}]")
            return F.one_hot(class_labels.long(), self.label_dim).to(torch.float32)
        class_labels = class_labels.to(torch.float32)
        if class_labels.shape[-1] != self.label_dim:
            raise ValueError(f"{type(self).__name__}: class_labels have width {class_labels.shape[-1]} but the "
                             f"network has label_dim {self.label_dim}; pass one-hot rows of length {self.label_dim}")
        return class_labels.reshape(-1, self.label_dim)

    @property
    def init_kwargs(self) -> dict:
        """All constructor arguments, as EDM records them: `type(net)(**net.init_kwargs)` rebuilds it."""
        return dict(self.precond_kwargs(), model_type=self.model_type, **self.model_kwargs())

    def precond_kwargs(self) -> dict:
        """The preconditioner's own arguments (no model_type / raw-network arguments)."""
        kwargs = dict(img_resolution=self.img_resolution, img_channels=self.img_channels, label_dim=self.label_dim,
                      use_fp16=self.use_fp16)
        kwargs.update(self._schedule_kwargs())
        return kwargs

    def _schedule_kwargs(self) -> dict:
        return {}

    def model_kwargs(self) -> dict:
        """The raw model's kwargs minus those the preconditioner supplies itself."""
        own = ("img_resolution", "in_channels", "out_channels", "label_dim")
        return {k: v for k, v in self.model.init_kwargs.items() if k not in own}


class VPPrecond(Precond):
    """Variance preserving (Song et al. 2021), EDM Table 1 column 'VP'."""

    def __init__(self, img_resolution, img_channels, label_dim=0, use_fp16=False,
                 beta_d=19.9, beta_min=0.1, M=1000, epsilon_t=1e-5, model_type="SongUNet", **model_kwargs):
        super().__init__(img_resolution, img_channels, label_dim, use_fp16, model_type, **model_kwargs)
        self.beta_d = beta_d
        self.beta_min = beta_min
        self.M = M
        self.epsilon_t = epsilon_t
        # float32 torch as in EDM; explicit CPU so building under a meta-device context works.
        with torch.device("cpu"):
            self.sigma_min = float(self.sigma(epsilon_t))
            self.sigma_max = float(self.sigma(1))

    def coefficients(self, sigma):
        c_skip = torch.ones_like(sigma)
        c_out = -sigma
        c_in = 1 / (sigma ** 2 + 1).sqrt()
        c_noise = (self.M - 1) * self.sigma_inv(sigma)
        return c_skip, c_out, c_in, c_noise

    def sigma(self, t):
        t = torch.as_tensor(t)
        return ((0.5 * self.beta_d * (t ** 2) + self.beta_min * t).exp() - 1).sqrt()

    def sigma_inv(self, sigma):
        sigma = torch.as_tensor(sigma)
        return ((self.beta_min ** 2 + 2 * self.beta_d * (1 + sigma ** 2).log()).sqrt() - self.beta_min) / self.beta_d

    def _schedule_kwargs(self):
        return dict(beta_d=self.beta_d, beta_min=self.beta_min, M=self.M, epsilon_t=self.epsilon_t)


class VEPrecond(Precond):
    """Variance exploding (Song et al. 2021), EDM Table 1 column 'VE'."""

    def __init__(self, img_resolution, img_channels, label_dim=0, use_fp16=False,
                 sigma_min=0.02, sigma_max=100, model_type="SongUNet", **model_kwargs):
        super().__init__(img_resolution, img_channels, label_dim, use_fp16, model_type, **model_kwargs)
        self.sigma_min = sigma_min
        self.sigma_max = sigma_max

    def coefficients(self, sigma):
        return torch.ones_like(sigma), sigma, torch.ones_like(sigma), (0.5 * sigma).log()

    def _schedule_kwargs(self):
        return dict(sigma_min=self.sigma_min, sigma_max=self.sigma_max)


class iDDPMPrecond(Precond):
    """Improved DDPM (Nichol & Dhariwal 2021), EDM Table 1 column 'iDDPM'.

    The net predicts 2*img_channels (mean and variance); only the first half is used. Noise
    levels live on the discrete grid `u` (buffer, as in EDM's checkpoints).
    """

    out_channels_factor = 2

    def __init__(self, img_resolution, img_channels, label_dim=0, use_fp16=False,
                 C_1=0.001, C_2=0.008, M=1000, model_type="DhariwalUNet", **model_kwargs):
        super().__init__(img_resolution, img_channels, label_dim, use_fp16, model_type, **model_kwargs)
        self.C_1 = C_1
        self.C_2 = C_2
        self.M = M
        with torch.device("cpu"):  # explicit CPU: computable under a meta-device context
            u = torch.zeros(M + 1)
            for j in range(M, 0, -1):  # u_{j-1} = sqrt((u_j^2 + 1) / max(alpha_bar(j-1)/alpha_bar(j), C_1) - 1)
                u[j - 1] = ((u[j] ** 2 + 1) / (self.alpha_bar(j - 1) / self.alpha_bar(j)).clip(min=C_1) - 1).sqrt()
        self.register_buffer("u", u)
        self.sigma_min = float(u[M - 1])
        self.sigma_max = float(u[0])

    def coefficients(self, sigma):
        c_noise = self.M - 1 - self.round_sigma(sigma, return_index=True).to(torch.float32)
        return torch.ones_like(sigma), -sigma, 1 / (sigma ** 2 + 1).sqrt(), c_noise

    def alpha_bar(self, j):
        j = torch.as_tensor(j)
        return (0.5 * np.pi * j / self.M / (self.C_2 + 1)).sin() ** 2

    def round_sigma(self, sigma, return_index=False):
        sigma = torch.as_tensor(sigma)
        dist = torch.cdist(sigma.to(self.u.device).to(torch.float32).reshape(1, -1, 1), self.u.reshape(1, -1, 1))
        index = dist.argmin(2)
        result = index if return_index else self.u[index.flatten()].to(sigma.dtype)
        return result.reshape(sigma.shape).to(sigma.device)

    def _schedule_kwargs(self):
        return dict(C_1=self.C_1, C_2=self.C_2, M=self.M)


class EDMPrecond(Precond):
    """EDM's preconditioning (Karras et al. 2022, Table 1 'ours', section 5)."""

    def __init__(self, img_resolution, img_channels, label_dim=0, use_fp16=False,
                 sigma_min=0, sigma_max=float("inf"), sigma_data=0.5, model_type="DhariwalUNet", **model_kwargs):
        super().__init__(img_resolution, img_channels, label_dim, use_fp16, model_type, **model_kwargs)
        self.sigma_min = sigma_min
        self.sigma_max = sigma_max
        self.sigma_data = sigma_data

    def coefficients(self, sigma):
        sd = self.sigma_data
        c_skip = sd ** 2 / (sigma ** 2 + sd ** 2)
        c_out = sigma * sd / (sigma ** 2 + sd ** 2).sqrt()
        c_in = 1 / (sd ** 2 + sigma ** 2).sqrt()
        c_noise = sigma.log() / 4
        return c_skip, c_out, c_in, c_noise

    def _schedule_kwargs(self):
        return dict(sigma_min=self.sigma_min, sigma_max=self.sigma_max, sigma_data=self.sigma_data)


class OneStepPrecond(EDMPrecond):
    """Consistency-model parameterization of the GDD/D2O one-step generators.

    Paper 000 (GDD) appendix B.4, following Song et al. 2023:
        c_skip(t) = sigma_data^2 / ((t - eps)^2 + sigma_data^2)
        c_out(t)  = sigma_data (t - eps) / sqrt(sigma_data^2 + t^2)
    with c_in and c_noise as EDM; eps = 0.002 (= sigma_min; Zyriix/GDD GDDPrecond uses 2e-3).
    So D(x; eps) = x exactly, and at t = sigma_max = 80, c_skip ~ 4e-5 (the input is almost
    ignored) while c_out ~ sigma_data: the paper's "c_out ~ 1" holds in units of sigma_data.
    The raw `model` and state-dict layout equal EDMPrecond's, so teacher weights load as is.
    """

    def __init__(self, img_resolution, img_channels, label_dim=0, use_fp16=False,
                 sigma_min=0.002, sigma_max=80.0, sigma_data=0.5, epsilon=0.002, model_type="SongUNet", **model_kwargs):
        super().__init__(img_resolution, img_channels, label_dim, use_fp16, sigma_min, sigma_max, sigma_data,
                         model_type, **model_kwargs)
        self.epsilon = epsilon

    def coefficients(self, sigma):
        sd, eps = self.sigma_data, self.epsilon
        c_skip = sd ** 2 / ((sigma - eps) ** 2 + sd ** 2)
        c_out = sd * (sigma - eps) / (sd ** 2 + sigma ** 2).sqrt()
        c_in = 1 / (sd ** 2 + sigma ** 2).sqrt()
        c_noise = sigma.log() / 4
        return c_skip, c_out, c_in, c_noise

    def generate(self, z, class_labels=None):
        """One-step sample: D(z * sigma_max; sigma_max), z ~ N(0, I) (GDD: x_T = z * 80)."""
        return self(z * self.sigma_max, self.sigma_max, class_labels)

    def _schedule_kwargs(self):
        return dict(sigma_min=self.sigma_min, sigma_max=self.sigma_max, sigma_data=self.sigma_data, epsilon=self.epsilon)

    @classmethod
    def from_teacher(cls, teacher: nn.Module, **overrides) -> "OneStepPrecond":
        """A one-step generator initialised with a copy of an EDM-preconditioned teacher's weights.

        Only EDMPrecond/OneStepPrecond teachers are accepted: their F shares the EDM scaling
        (c_in, c_noise), so the copied network starts where GDD/D2O start. `overrides` change
        schedule settings (sigma_max, epsilon, ...), not the architecture.
        """
        if not isinstance(teacher, EDMPrecond):
            raise TypeError(f"OneStepPrecond.from_teacher needs an EDMPrecond teacher, got {type(teacher).__name__}; "
                            "VP/VE/iDDPM networks use a different input/noise scaling")
        allowed = {"sigma_min", "sigma_max", "sigma_data", "epsilon", "use_fp16"}
        bad = set(overrides) - allowed
        if bad:
            raise ConfigError(f"OneStepPrecond.from_teacher: cannot override {sorted(bad)}; allowed: {sorted(allowed)}")
        schedule = dict(sigma_data=teacher.sigma_data)
        schedule.update(overrides)
        student = cls(teacher.img_resolution, teacher.img_channels, teacher.label_dim,
                      use_fp16=schedule.pop("use_fp16", teacher.use_fp16), model_type=teacher.model_type,
                      **schedule, **teacher.model_kwargs())
        ref = next(teacher.parameters())
        student.to(device=ref.device, dtype=ref.dtype)
        student.load_state_dict(teacher.state_dict(), strict=True)
        return student


PRECOND_TYPES: dict[str, type[Precond]] = {
    c.__name__: c for c in (VPPrecond, VEPrecond, iDDPMPrecond, EDMPrecond, OneStepPrecond)
}
