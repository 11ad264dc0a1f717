"""Real-data batches: deterministic order from (seed, epoch), each rank gets its slice.

The global batch of step s is positions [s*B, (s+1)*B) of an endless stream made of one
permutation per epoch (seeded by (seed, epoch)); rank r takes rows [r*B/N, (r+1)*B/N). The
batch is a pure function of the step, so N ranks see exactly the 1-rank batch and a resumed
run needs no sampler state.
"""
from __future__ import annotations

import torch

from onestep.methods.plugin import Batch

from .seeding import derive_seed


class ShardedBatches:
    def __init__(self, dataset, batch_size: int, seed: int, rank: int = 0, world_size: int = 1,
                 device: torch.device | str = "cpu"):
        if batch_size % world_size:
            raise ValueError(f"global batch {batch_size} is not divisible by {world_size} processes; "
                             "choose a batch size that is a multiple of the process count")
        images = getattr(dataset, "images", None)
        if images is None or not isinstance(images, torch.Tensor) or images.dtype != torch.uint8 or images.ndim != 4:
            raise TypeError("training data must be an ArrayImageDataset-like object with uint8 `images` (N, C, H, W)")
        if len(images) == 0:
            raise ValueError("training dataset is empty")
        self.images = images
        self.labels = getattr(dataset, "labels", None)
        self.label_dim = int(getattr(dataset, "label_dim", 0) or 0)
        self.batch_size, self.seed, self.rank, self.world_size = batch_size, seed, rank, world_size
        self.local_batch_size = batch_size // world_size
        self.device = torch.device(device)
        self._perm_epoch, self._perm = -1, None

    def _permutation(self, epoch: int) -> torch.Tensor:
        if epoch != self._perm_epoch:
            g = torch.Generator().manual_seed(derive_seed(self.seed, "data", epoch))
            self._perm, self._perm_epoch = torch.randperm(len(self.images), generator=g), epoch
        return self._perm

    def indices(self, step: int) -> torch.Tensor:
        """Dataset indices of this rank's slice of the global batch of `step`."""
        n = len(self.images)
        start = step * self.batch_size + self.rank * self.local_batch_size
        out = []
        pos, remaining = start, self.local_batch_size
        while remaining:
            epoch, offset = divmod(pos, n)
            take = min(remaining, n - offset)
            out.append(self._permutation(epoch)[offset:offset + take])
            pos, remaining = pos + take, remaining - take
        return torch.cat(out)

    def batch(self, step: int, count: int = 1) -> Batch:
        """The batch of `step`; with count > 1, `count` consecutive batches of the stream
        (positions step*count ... step*count + count - 1), the rest in `Batch.more`."""
        if count > 1:
            first, *rest = (self.batch(step * count + j) for j in range(count))
            first.more = tuple(rest)
            return first
        idx = self.indices(step)
        x = self.images[idx].to(self.device, torch.float32) / 127.5 - 1  # EDM: uint8 -> [-1, 1]
        labels = None
        if self.label_dim and self.labels is not None:
            labels = torch.nn.functional.one_hot(self.labels[idx], self.label_dim).to(self.device, torch.float32)
        return Batch(images=x, labels=labels)
