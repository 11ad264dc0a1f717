"""Forward hooks on the zoo's U-Nets: what each block sees and produces, without copying a network.

`record_blocks(net, what)` registers hooks on every UNetBlock (SongUNet DDPM++/NCSN++ and
DhariwalUNet ADM share the block class) and appends, per network call, one tensor per block:
  what="io":    (block input, block output)      frequency analysis (paper 001 Fig. 6)
  what="conv1": the block's last convolution on its main path (`conv1`)  activations
                (paper 000 Fig. 3: "the outputs of each UNet block's last convolutional layer")
Hooks are removed when the context exits, also on errors.
"""
from __future__ import annotations

import contextlib
import re
from dataclasses import dataclass, field

import torch
from torch import nn

from onestep.methods.zoo.layers import UNetBlock


@dataclass
class BlockInfo:
    name: str  # module path, e.g. "model.enc.8x8_block0"
    part: str  # "enc" or "dec"
    resolution: int  # spatial size the block outputs
    order: int  # position in its part, in execution order
    depth: int = 0  # 0 = shallowest; encoder: execution order, decoder: reversed


@dataclass
class BlockRecords:
    blocks: list[BlockInfo]
    calls: list[dict[str, object]] = field(default_factory=list)  # per network call: {block name: tensor(s)}


def unet_blocks(net: nn.Module) -> list[tuple[BlockInfo, UNetBlock]]:
    """Every UNetBlock of a zoo network in execution order (encoder, then decoder)."""
    found = []
    for name, mod in net.named_modules():
        if isinstance(mod, UNetBlock):
            parts = name.split(".")
            part = "enc" if "enc" in parts else "dec" if "dec" in parts else "other"
            m = re.search(r"(\d+)x\1", name)
            found.append((name, part, int(m.group(1)) if m else -1, mod))
    if not found:
        raise TypeError(f"{type(net).__name__} has no UNetBlock: hooks need a zoo U-Net (SongUNet / DhariwalUNet)")
    out = []
    for part in ("enc", "dec", "other"):
        mine = [f for f in found if f[1] == part]
        for i, (name, p, res, mod) in enumerate(mine):
            depth = i if part != "dec" else len(mine) - 1 - i
            out.append((BlockInfo(name, p, res, i, depth), mod))
    return out


@contextlib.contextmanager
def record_blocks(net: nn.Module, what: str = "io", reduce=None):
    """Context manager yielding BlockRecords; `reduce(tensor) -> tensor` shrinks what is kept
    (e.g. a mean over the batch) so long trajectories stay small."""
    if what not in ("io", "conv1"):
        raise ValueError(f"record_blocks: what={what!r}; choose 'io' or 'conv1'")
    keep = reduce or (lambda t: t)
    blocks = unet_blocks(net)
    rec = BlockRecords([b for b, _ in blocks])
    first = blocks[0][0].name
    handles = []

    def slot(name):
        if name == first or not rec.calls:  # the first block opens a new network call
            rec.calls.append({})
        return rec.calls[-1]

    for info, mod in blocks:
        if what == "io":
            def hook(module, args, output, name=info.name):
                slot(name)[name] = (keep(args[0].detach().float()), keep(output.detach().float()))
            handles.append(mod.register_forward_hook(hook))
        else:
            def hook(module, args, output, name=info.name):
                slot(name)[name] = keep(output.detach().float())
            handles.append(mod.conv1.register_forward_hook(hook))
    try:
        yield rec
    finally:
        for h in handles:
            h.remove()


class RecordingDenoiser(nn.Module):
    """Wraps a denoiser (no copy) and keeps each call's (x, sigma, D(x)) for trajectory analyses."""

    def __init__(self, denoiser: nn.Module, reduce=None):
        super().__init__()
        self.inner = denoiser
        self.keep = reduce or (lambda t: t)
        self.calls: list[tuple[torch.Tensor, float, torch.Tensor]] = []
        for a in ("img_resolution", "img_channels", "label_dim", "sigma_min", "sigma_max", "sigma_data"):
            setattr(self, a, getattr(denoiser, a))

    def round_sigma(self, sigma):
        return self.inner.round_sigma(sigma)

    def forward(self, x, sigma, class_labels=None, **kw):
        out = self.inner(x, sigma, class_labels, **kw)
        s = torch.as_tensor(sigma).flatten()
        self.calls.append((self.keep(x.detach().float()), float(s[0]), self.keep(out.detach().float())))
        return out
