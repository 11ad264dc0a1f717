"""Datasets as uint8 images (N, C, H, W) with integer labels, like EDM's dataset format.

Training converts to [-1, 1] with x / 127.5 - 1; metrics read the uint8 images directly.
The embedded default is scikit-learn's digits (1,797 8x8 images shipped with the library).
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np
import torch
from torch.utils.data import Dataset


class ArrayImageDataset(Dataset):
    """An in-memory dataset: uint8 images (N, C, H, W) and optional int labels (N,)."""

    def __init__(self, images: np.ndarray | torch.Tensor, labels=None, label_dim: int = 0, name: str = "array"):
        images = torch.as_tensor(images)
        if images.dtype != torch.uint8 or images.ndim != 4:
            raise ValueError(f"dataset '{name}': images must be uint8 (N, C, H, W), got {images.dtype} {tuple(images.shape)}")
        if images.shape[2] != images.shape[3]:
            raise ValueError(f"dataset '{name}': images must be square, got {images.shape[2]}x{images.shape[3]}")
        self.images = images
        self.labels = None if labels is None else torch.as_tensor(labels, dtype=torch.int64)
        if self.labels is not None and len(self.labels) != len(images):
            raise ValueError(f"dataset '{name}': {len(images)} images but {len(self.labels)} labels")
        self.label_dim = int(label_dim)
        self.name = name
        self._hash: str | None = None

    def __len__(self) -> int:
        return self.images.shape[0]

    def __getitem__(self, i: int):
        label = -1 if self.labels is None else int(self.labels[i])
        return self.images[i], label

    @property
    def resolution(self) -> int:
        return int(self.images.shape[-1])

    @property
    def channels(self) -> int:
        return int(self.images.shape[1])

    def content_hash(self) -> str:
        """sha256 over shape, pixels and labels: the data's identity in cache keys."""
        if self._hash is None:
            h = hashlib.sha256(str(tuple(self.images.shape)).encode())
            h.update(self.images.contiguous().numpy().tobytes())
            if self.labels is not None:
                h.update(self.labels.numpy().tobytes())
            self._hash = h.hexdigest()[:16]
        return self._hash

    def onehot(self, labels: torch.Tensor) -> torch.Tensor | None:
        if not self.label_dim:
            return None
        return torch.nn.functional.one_hot(labels, self.label_dim).float()

    def subset(self, index, name: str | None = None) -> "ArrayImageDataset":
        index = torch.as_tensor(index, dtype=torch.int64)
        return ArrayImageDataset(
            self.images[index], None if self.labels is None else self.labels[index], self.label_dim, name or self.name
        )


@dataclass(frozen=True)
class DigitsSpec:
    resolution: int = 8  # native; 16 and 32 are bilinear upsamplings
    channels: int = 1  # 3 repeats the grey channel
    split: str = "all"  # all | train | test (a fixed 80/20 split, seed 0)
    conditional: bool = True


def load_digits(resolution: int = 8, channels: int = 1, split: str = "all", conditional: bool = True) -> ArrayImageDataset:
    """scikit-learn's digits as uint8 images: values 0..16 map linearly onto 0..255."""
    from sklearn.datasets import load_digits as _load

    if resolution not in (8, 16, 32, 64):
        raise ValueError(f"digits resolution must be 8 (native), 16, 32 or 64, got {resolution}")
    if channels not in (1, 3):
        raise ValueError(f"digits channels must be 1 or 3, got {channels}")
    raw = _load()
    x = torch.from_numpy(raw.images.astype(np.float32) / 16.0)[:, None]  # (N,1,8,8) in [0,1]
    labels = torch.from_numpy(raw.target.astype(np.int64))
    if resolution != 8:
        x = torch.nn.functional.interpolate(x, size=(resolution, resolution), mode="bilinear", align_corners=False)
    images = (x * 255).round().clamp(0, 255).to(torch.uint8)
    if channels == 3:
        images = images.repeat(1, 3, 1, 1)
    order = torch.randperm(len(images), generator=torch.Generator().manual_seed(0))
    n_train = int(round(0.8 * len(images)))
    if split == "train":
        index = order[:n_train].sort().values
    elif split == "test":
        index = order[n_train:].sort().values
    elif split == "all":
        index = torch.arange(len(images))
    else:
        raise ValueError(f"digits split must be 'all', 'train' or 'test', got '{split}'")
    name = f"digits-{resolution}x{resolution}-c{channels}-{split}"
    return ArrayImageDataset(images[index], labels[index] if conditional else None, 10 if conditional else 0, name)


def to_model_range(images_uint8: torch.Tensor) -> torch.Tensor:
    """uint8 -> float in [-1, 1], as EDM's training loop does."""
    return images_uint8.to(torch.float32) / 127.5 - 1
