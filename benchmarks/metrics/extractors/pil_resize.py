"""PIL's bicubic resize of uint8 images, bit for bit, as two matrices applied on any device.

clean-fid's CLIP-FID resizes every image with PIL on the CPU (torchvision Resize(224, BICUBIC)
+ CenterCrop(224) on a PIL image). A resize is linear, so it is a matrix per axis; what makes
PIL's result a uint8 image is its fixed-point arithmetic, reproduced here exactly
(Pillow's libImaging/Resample.c, 8 bits per channel):
- coefficients per output pixel: bicubic a = -0.5, support 2 * max(scale, 1) (antialiasing
  when shrinking), taps xmin..xmax around center = (x + 0.5) * scale, normalised to sum 1 in
  float64, then quantized to integers k = round_half_away(w * 2**22);
- the horizontal pass runs first, then the vertical; each output is
  clip((2**21 + sum_k k * pixel) >> 22, 0, 255): the intermediate image is uint8 too;
- an axis whose size does not change is not resampled.
Every product and partial sum is an integer below 2**34, exact in float64, so a float64 matrix
product followed by the same floor and clip gives PIL's bytes on a CPU or a GPU.
"""
from __future__ import annotations

from functools import lru_cache

import numpy as np
import torch

PRECISION_BITS = 32 - 8 - 2  # Resample.c: 22 fractional bits for 8-bit images
_BICUBIC_A = -0.5
_BICUBIC_SUPPORT = 2.0


def _bicubic(x: float) -> float:
    x = abs(x)
    if x < 1.0:
        return ((_BICUBIC_A + 2.0) * x - (_BICUBIC_A + 3.0)) * x * x + 1
    if x < 2.0:
        return (((x - 5) * x + 8) * x - 4) * _BICUBIC_A
    return 0.0


@lru_cache(maxsize=32)
def pil_bicubic_matrix(in_size: int, out_size: int) -> np.ndarray:
    """(out_size, in_size) int64 fixed-point coefficients of PIL's bicubic resize of one axis."""
    if in_size <= 0 or out_size <= 0:
        raise ValueError(f"resize sizes must be positive, got {in_size} -> {out_size}")
    scale = in_size / out_size
    filterscale = max(scale, 1.0)
    support = _BICUBIC_SUPPORT * filterscale
    m = np.zeros((out_size, in_size), np.int64)
    for xx in range(out_size):
        center = (xx + 0.5) * scale
        xmin = max(int(center - support + 0.5), 0)
        xmax = min(int(center + support + 0.5), in_size)
        w = np.array([_bicubic((x - center + 0.5) / filterscale) for x in range(xmin, xmax)])
        total = w.sum()
        if total != 0.0:
            w = w / total
        q = w * (1 << PRECISION_BITS)
        m[xx, xmin:xmax] = np.where(q < 0, q - 0.5, q + 0.5).astype(np.int64)  # C's (int) truncates
    return m


def _requant(x: torch.Tensor) -> torch.Tensor:
    """clip8 of Resample.c on exact integer sums held in float64."""
    return torch.floor((x + (1 << (PRECISION_BITS - 1))) / (1 << PRECISION_BITS)).clamp_(0, 255)


def torchvision_resize_size(h: int, w: int, size: int) -> tuple[int, int]:
    """(oh, ow) of torchvision's Resize(size) with an int: the short side becomes `size`."""
    if h <= w:
        return size, int(size * w / h)
    return int(size * h / w), size


class PILBicubicResize:
    """uint8 (B, C, H, W) -> uint8 (B, C, size, size): Resize(size, BICUBIC) + CenterCrop(size)
    on PIL images, computed as batched float64 matrix products on the images' device."""

    def __init__(self, size: int):
        self.size = size
        self._mats: dict[tuple, tuple] = {}

    def _matrices(self, h: int, w: int, device: torch.device):
        key = (h, w, str(device))
        if key not in self._mats:
            oh, ow = torchvision_resize_size(h, w, self.size)
            top, left = int(round((oh - self.size) / 2.0)), int(round((ow - self.size) / 2.0))
            if oh < self.size or ow < self.size:  # PIL's crop would pad; never the case for 224 from small images
                raise ValueError(f"image {h}x{w} resized to {oh}x{ow} is smaller than the {self.size} crop")
            # Each output pixel is independent: the centre crop keeps rows of each axis matrix.
            my = None if oh == h else torch.from_numpy(pil_bicubic_matrix(h, oh)[top:top + self.size])
            mx = None if ow == w else torch.from_numpy(pil_bicubic_matrix(w, ow)[left:left + self.size])
            self._mats[key] = (None if my is None else my.to(device, torch.float64),
                               None if mx is None else mx.to(device, torch.float64), (top, left))
        return self._mats[key]

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        if images.dtype != torch.uint8 or images.ndim != 4:
            raise TypeError(f"PILBicubicResize expects uint8 (B, C, H, W) images, got {images.dtype} {tuple(images.shape)}")
        h, w = images.shape[-2:]
        my, mx, (top, left) = self._matrices(h, w, images.device)
        x = images.to(torch.float64)
        if mx is not None:  # horizontal pass first, as PIL, into a uint8-valued image
            x = _requant(x @ mx.T)
        if my is not None:
            x = _requant(my @ x)
        if my is None:
            x = x[..., top:top + self.size, :]
        if mx is None:
            x = x[..., left:left + self.size]
        return x.to(torch.uint8)

