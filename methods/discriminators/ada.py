"""Adaptive discriminator augmentation (ADA, Karras et al. 2020a, StyleGAN2-ADA).

`AugmentPipe` applies StyleGAN2-ADA's 'bgc' set with its default strengths, each augmentation
to each image with probability p (times its multiplier, 1 by default):
  pixel blitting: x-flip, 90-degree rotation, integer translation (up to 1/8 of the side);
  geometric: isotropic scale (log2 std 0.2), rotation (full circle, before and after the
    anisotropic scale, each with 1 - sqrt(1 - p) so that one of them happens with p),
    anisotropic scale (log2 std 0.2), fractional translation (std 1/8 of the side);
  colour: brightness (std 0.2), contrast (log2 std 0.5), luma flip, hue rotation (full circle),
    saturation (log2 std 1); hue and saturation only for RGB.
The geometric transforms compose into one inverse matrix per image, executed once: reflect
padding, 2x upsampling with the Symlet-6 low-pass, a bilinear resample, 2x downsampling. The
colour transforms compose into one 4x4 matrix on homogeneous RGB; a 1-channel image gets the
mean of its three rows (as StyleGAN2-ADA). Everything is differentiable in the images, so the
generator's gradient passes through.

Random draws come from `rand(*shape)` / `randn(*shape)` callables, called in StyleGAN2-ADA's
order with its shapes (every draw's first dimension is the batch), so the GDD plugin can feed
its per-step streams and a test can feed the global RNG and compare with the official pipe.

`AdaptiveAugment` adds StyleGAN2-ADA's controller: every `interval` steps
p <- max(0, p + sign(r_t - target) * batch * interval / (kimg * 1000)), r_t the mean sign of
the discriminator's real logits since the last update, the batch the global one. p and the sign
accumulator are buffers, so they are saved with the method's modules and survive a resume.
"""
from __future__ import annotations

import math
from typing import Callable

import torch
from torch import nn
from torch.nn import functional as F

from ..core.config import ConfigError

Draw = Callable[..., torch.Tensor]

# Symlet-6 orthogonal low-pass filter (12 taps; sums to sqrt 2), the geometric resampling filter
# of StyleGAN2-ADA.
SYM6 = (0.015404109327027373, 0.0034907120842174702, -0.11799011114819057, -0.048311742585633,
        0.4910559419267466, 0.787641141030194, 0.3379294217276218, -0.07263752278646252,
        -0.021060292512300564, 0.04472490177066578, 0.0017677118642428036, -0.007800708325034148)

GEOMETRIC = ("xflip", "rotate90", "xint", "scale", "rotate", "aniso", "xfrac")
COLOUR = ("brightness", "contrast", "lumaflip", "hue", "saturation")
BGC = GEOMETRIC + COLOUR  # StyleGAN2-ADA's default augmentation set ('bgc')

# Default strengths of StyleGAN2-ADA's AugmentPipe.
XINT_MAX, SCALE_STD, ROTATE_MAX, ANISO_STD, XFRAC_STD = 0.125, 0.2, 1.0, 0.2, 0.125
BRIGHTNESS_STD, CONTRAST_STD, HUE_MAX, SATURATION_STD = 0.2, 0.5, 1.0, 1.0


# --- batched homogeneous matrices ------------------------------------------------------------
def _mat(rows, like: torch.Tensor) -> torch.Tensor:
    """(B, n, n) from rows of (B,) tensors and numbers."""
    b = like.shape[0]
    elems = [e.reshape(b) if torch.is_tensor(e) else like.new_full((b,), float(e)) for row in rows for e in row]
    return torch.stack(elems, dim=-1).reshape(b, len(rows), len(rows))


def _translate(tx, ty, like):
    return _mat([[1, 0, tx], [0, 1, ty], [0, 0, 1]], like)


def _scale(sx, sy, like):
    return _mat([[sx, 0, 0], [0, sy, 0], [0, 0, 1]], like)


def _rotate(theta):
    c, s = torch.cos(theta), torch.sin(theta)
    return _mat([[c, -s, 0], [s, c, 0], [0, 0, 1]], theta)


def _pad_or_crop(x, p0, p1):
    """Zero-pad (positive) or crop (negative) both spatial axes by p0 before and p1 after."""
    x = F.pad(x, [max(p0, 0), max(p1, 0), max(p0, 0), max(p1, 0)])
    h, w = x.shape[-2:]
    return x[:, :, max(-p0, 0):h - max(-p1, 0), max(-p0, 0):w - max(-p1, 0)]


def _correlate(x, taps):
    """Separable depthwise correlation with 1-D taps along the width, then the height."""
    c, n = x.shape[1], taps.numel()
    x = F.conv2d(x, taps.view(1, 1, 1, n).expand(c, 1, 1, n), groups=c)
    return F.conv2d(x, taps.view(1, 1, n, 1).expand(c, 1, n, 1), groups=c)


def upsample2x(x, taps):
    """Zero insertion then convolution with the normalised taps (gain 2 per axis); same size x 2."""
    b, c, h, w = x.shape
    n = taps.numel()
    up = x.new_zeros(b, c, 2 * h, 2 * w)
    up[:, :, ::2, ::2] = x
    return _correlate(_pad_or_crop(up, (n + 1) // 2, (n - 2) // 2), (2 * taps).flip(0))


def downsample2x(x, taps, crop: int):
    """Correlation with the taps and decimation by 2, after cropping `crop` pixels per side."""
    n = taps.numel()
    x = _pad_or_crop(x, (n - 1) // 2 - crop, (n - 2) // 2 - crop)
    return _correlate(x, taps)[:, :, ::2, ::2]


class AugmentPipe(nn.Module):
    """forward(images (B, 1 or 3, H, W), rand, randn) -> augmented images; p is a buffer."""

    def __init__(self, p: float = 0.0, **multipliers: float):
        super().__init__()
        unknown = sorted(set(multipliers) - set(BGC))
        if unknown:
            raise ConfigError(f"unknown ADA augmentation {unknown[0]!r}; choose from {list(BGC)}")
        self.mult = {k: float(multipliers.get(k, 1.0)) for k in BGC}
        self.register_buffer("p", torch.tensor(float(p)))
        taps = torch.tensor(SYM6, dtype=torch.float32)
        self.register_buffer("taps", taps / taps.sum(), persistent=False)  # DC gain 1

    def _on(self, name: str) -> bool:
        return self.mult[name] > 0

    def _chance(self, name: str):
        return self.mult[name] * self.p

    def forward(self, images: torch.Tensor, rand: Draw | None = None, randn: Draw | None = None) -> torch.Tensor:
        if images.ndim != 4:
            raise ValueError(f"ADA expects images (B, C, H, W), got shape {tuple(images.shape)}")
        b, ch, h, w = images.shape
        dev = images.device
        if ch not in (1, 3) and any(self._on(k) for k in COLOUR):
            raise ValueError(f"ADA's colour transforms need 1 or 3 channels, got {ch}")
        rand = rand or (lambda *s: torch.rand(s, device=dev))
        randn = randn or (lambda *s: torch.randn(s, device=dev))
        U = lambda *s: rand(*s).to(device=dev, dtype=torch.float32)  # noqa: E731
        N = lambda *s: randn(*s).to(device=dev, dtype=torch.float32)  # noqa: E731
        ref = torch.zeros(b, device=dev)
        p = self.p.to(dev)

        # Inverse geometric transform (output pixel -> input pixel), composed right to left.
        G = torch.eye(3, device=dev).expand(b, 3, 3)
        if self._on("xflip"):
            i = torch.floor(U(b) * 2)
            i = torch.where(U(b) < self._chance("xflip"), i, torch.zeros_like(i))
            G = G @ _scale(1 - 2 * i, 1, ref)
        if self._on("rotate90"):
            i = torch.floor(U(b) * 4)
            i = torch.where(U(b) < self._chance("rotate90"), i, torch.zeros_like(i))
            G = G @ _rotate(math.pi / 2 * i)
        if self._on("xint"):
            t = (U(b, 2) * 2 - 1) * XINT_MAX
            t = torch.where(U(b, 1) < self._chance("xint"), t, torch.zeros_like(t))
            G = G @ _translate(-torch.round(t[:, 0] * w), -torch.round(t[:, 1] * h), ref)
        if self._on("scale"):
            s = torch.exp2(N(b) * SCALE_STD)
            s = torch.where(U(b) < self._chance("scale"), s, torch.ones_like(s))
            G = G @ _scale(1 / s, 1 / s, ref)
        p_rot = 1 - torch.sqrt((1 - self.mult["rotate"] * p).clamp(0, 1))  # P(pre or post) = p
        if self._on("rotate"):
            theta = (U(b) * 2 - 1) * math.pi * ROTATE_MAX
            theta = torch.where(U(b) < p_rot, theta, torch.zeros_like(theta))
            G = G @ _rotate(theta)
        if self._on("aniso"):
            s = torch.exp2(N(b) * ANISO_STD)
            s = torch.where(U(b) < self._chance("aniso"), s, torch.ones_like(s))
            G = G @ _scale(1 / s, 1 / (1 / s), ref)  # as StyleGAN2-ADA writes it (bit-equal)
        if self._on("rotate"):
            theta = (U(b) * 2 - 1) * math.pi * ROTATE_MAX
            theta = torch.where(U(b) < p_rot, theta, torch.zeros_like(theta))
            G = G @ _rotate(theta)
        if self._on("xfrac"):
            t = N(b, 2) * XFRAC_STD
            t = torch.where(U(b, 1) < self._chance("xfrac"), t, torch.zeros_like(t))
            G = G @ _translate(-t[:, 0] * w, -t[:, 1] * h, ref)
        x = images
        if any(self._on(k) for k in GEOMETRIC):
            x = self._resample(x, G)

        # Colour transform on homogeneous RGB, composed left to right.
        C = torch.eye(4, device=dev).expand(b, 4, 4)
        colour = False
        if self._on("brightness"):
            v = N(b) * BRIGHTNESS_STD
            v = torch.where(U(b) < self._chance("brightness"), v, torch.zeros_like(v))
            C = _mat([[1, 0, 0, v], [0, 1, 0, v], [0, 0, 1, v], [0, 0, 0, 1]], ref) @ C
            colour = True
        if self._on("contrast"):
            c = torch.exp2(N(b) * CONTRAST_STD)
            c = torch.where(U(b) < self._chance("contrast"), c, torch.ones_like(c))
            C = _mat([[c, 0, 0, 0], [0, c, 0, 0], [0, 0, c, 0], [0, 0, 0, 1]], ref) @ C
            colour = True
        axis = torch.tensor([1.0, 1.0, 1.0, 0.0], device=dev) / math.sqrt(3)  # luma axis
        luma = torch.outer(axis, axis)
        eye4 = torch.eye(4, device=dev)
        if self._on("lumaflip"):
            i = torch.floor(U(b, 1, 1) * 2)
            i = torch.where(U(b, 1, 1) < self._chance("lumaflip"), i, torch.zeros_like(i))
            C = (eye4 - 2 * luma * i) @ C  # Householder reflection along the luma axis
            colour = True
        if self._on("hue") and ch > 1:
            theta = (U(b) * 2 - 1) * math.pi * HUE_MAX
            theta = torch.where(U(b) < self._chance("hue"), theta, torch.zeros_like(theta))
            C = self._rotate_about_luma(theta, axis, luma) @ C
            colour = True
        if self._on("saturation") and ch > 1:
            s = torch.exp2(N(b, 1, 1) * SATURATION_STD)
            s = torch.where(U(b, 1, 1) < self._chance("saturation"), s, torch.ones_like(s))
            C = (luma + (eye4 - luma) * s) @ C
            colour = True
        if colour:
            flat = x.reshape(b, ch, h * w)
            if ch == 3:
                flat = C[:, :3, :3] @ flat + C[:, :3, 3:]
            else:  # luminance: the mean of the RGB rows
                row = C[:, :3, :].mean(dim=1, keepdim=True)
                flat = flat * row[:, :, :3].sum(dim=2, keepdim=True) + row[:, :, 3:]
            x = flat.reshape(b, ch, h, w)
        return x

    @staticmethod
    def _rotate_about_luma(theta, axis, luma):
        """Rodrigues: cos I + (1 - cos) a a^T + sin [a]_x on the RGB block."""
        b = theta.shape[0]
        ax, ay, az = (float(v) for v in axis[:3])
        cross = torch.tensor([[0, -az, ay, 0], [az, 0, -ax, 0], [-ay, ax, 0, 0], [0, 0, 0, 0]], device=theta.device)
        eye3 = torch.diag(torch.tensor([1.0, 1.0, 1.0, 0.0], device=theta.device))
        c, s = theta.cos().view(b, 1, 1), theta.sin().view(b, 1, 1)
        R = c * eye3 + (1 - c) * luma + s * cross
        R[:, 3, 3] = 1
        return R

    def _resample(self, x, G):
        """Execute the inverse transforms G (B, 3, 3) in pixel coordinates centred on the image."""
        b, ch, h, w = x.shape
        dev = x.device
        pad = self.taps.numel() // 4
        cx, cy = (w - 1) / 2, (h - 1) / 2
        corners = torch.tensor([[-cx, cx, cx, -cx], [-cy, -cy, cy, cy], [1.0, 1.0, 1.0, 1.0]], device=dev)
        xy = (G @ corners)[:, :2, :].permute(1, 0, 2).reshape(2, -1)  # where the output corners come from
        margin = torch.cat([(-xy).amax(1), xy.amax(1)])  # x0, y0, x1, y1 beyond the centre
        margin = margin + torch.tensor([2 * pad - cx, 2 * pad - cy] * 2, device=dev)
        margin = torch.minimum(margin.clamp_min(0), torch.tensor([w - 1, h - 1] * 2, device=dev, dtype=margin.dtype))
        mx0, my0, mx1, my1 = (int(v) for v in margin.ceil().tolist())  # one batch-wide padding
        x = F.pad(x, [mx0, mx1, my0, my1], mode="reflect")
        G = _translate((mx0 - mx1) / 2, (my0 - my1) / 2, G) @ G
        x = upsample2x(x, self.taps.to(x.dtype))
        G = _scale(2, 2, G) @ G @ _scale(0.5, 0.5, G)
        G = _translate(-0.5, -0.5, G) @ G @ _translate(0.5, 0.5, G)
        out_h, out_w = (h + 2 * pad) * 2, (w + 2 * pad) * 2
        # To normalised [-1, 1] coordinates of the upsampled input and of the output grid.
        G = _scale(2 / x.shape[3], 2 / x.shape[2], G) @ G @ _scale(out_w / 2, out_h / 2, G)
        grid = F.affine_grid(G[:, :2, :].to(x.dtype), [b, ch, out_h, out_w], align_corners=False)
        x = F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
        return downsample2x(x, self.taps.to(x.dtype), crop=2 * pad)


def ada_adjust(p: torch.Tensor, sign_mean: float, target: float, batch_size: int, interval: int, kimg: float) -> torch.Tensor:
    """StyleGAN2-ADA's update: p + sign(r_t - target) * batch * interval / (kimg * 1000), floored at 0."""
    direction = (sign_mean > target) - (sign_mean < target)
    return (p + direction * (batch_size * interval) / (kimg * 1000)).clamp_min(0)


class AdaptiveAugment(nn.Module):
    """The pipe plus the controller. target None: fixed p (StyleGAN2-ADA with --augment-p only).

    `signs` holds (sum, count) of sign(real logits) since the last update, already averaged over
    ranks at every step, so each rank (and a checkpoint written by rank 0) holds the global value."""

    def __init__(self, target: float | None, p: float = 0.0, kimg: float = 500.0, interval: int = 4, **multipliers):
        super().__init__()
        if target is not None and not 0 <= target < 1:
            raise ConfigError(f"ada_target {target}: the target of the mean sign of real logits lies in [0, 1) "
                              "(StyleGAN2-ADA: 0.6); 0 switches the controller off")
        if p < 0 or kimg <= 0 or interval < 1:
            raise ConfigError(f"ADA needs ada_p >= 0, ada_kimg > 0 and ada_interval >= 1 (got {p}, {kimg}, {interval})")
        self.pipe = AugmentPipe(p, **multipliers)
        self.target, self.p_init, self.kimg, self.interval = target, float(p), float(kimg), int(interval)
        self.register_buffer("signs", torch.zeros(2, dtype=torch.float64))

    @property
    def p(self) -> torch.Tensor:
        return self.pipe.p

    def forward(self, images, rand: Draw | None = None, randn: Draw | None = None):
        return self.pipe(images, rand, randn)

    def accumulate(self, real_logits, reduce_mean: Callable[[torch.Tensor], torch.Tensor] | None = None) -> None:
        if self.target is None:
            return
        flat = torch.cat([l.detach().flatten() for l in real_logits]).double()
        stats = torch.stack([flat.sign().sum(), flat.new_tensor(float(flat.numel()))])
        if reduce_mean is not None:
            stats = reduce_mean(stats)
        self.signs += stats.to(self.signs)

    def end_step(self, step: int, batch_size: int) -> None:
        """After update `step` (0-based): on every `interval`-th step, move p and reset the signs."""
        if self.target is None or (step + 1) % self.interval or float(self.signs[1]) == 0:
            return
        r_t = float(self.signs[0] / self.signs[1])
        self.pipe.p.copy_(ada_adjust(self.pipe.p, r_t, self.target, batch_size, self.interval, self.kimg))
        self.signs.zero_()

    def describe(self) -> dict:
        return {"augmentations": "bgc: " + ", ".join(k for k in BGC if self.pipe.mult[k] > 0),
                "target": self.target, "adaptive": self.target is not None, "p_init": self.p_init,
                "kimg": self.kimg, "interval_steps": self.interval}


def build_ada(target: float, p: float, kimg: float, interval: int) -> AdaptiveAugment | None:
    """StyleGAN2-ADA's switch: a pipe when p > 0 or a target is set (target 0 = none), else None."""
    if target < 0:
        raise ConfigError(f"ada_target {target} < 0; use 0 to switch ADA's controller off")
    if target == 0 and p == 0:
        return None
    return AdaptiveAugment(target or None, p, kimg, interval)
