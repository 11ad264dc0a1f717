"""DhariwalUNet: the ADM U-Net (Dhariwal & Nichol 2021) in EDM's layout (edm-imagenet-64x64-cond-adm).

Attention uses one head per 64 channels (EDM's channels_per_head=64), so at widths below 64
an "attention" block has no heads and no qkv/proj, exactly as in EDM.
"""
from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F

from .layers import Conv2d, GroupNorm, Linear, PositionalEmbedding, UNetBlock
from .songunet import READ_OUTS


class DhariwalUNet(nn.Module):
    def __init__(self,
                 img_resolution: int,
                 in_channels: int,
                 out_channels: int,
                 label_dim: int = 0,
                 augment_dim: int = 0,
                 model_channels: int = 192,
                 channel_mult=(1, 2, 3, 4),
                 channel_mult_emb: int = 4,
                 num_blocks: int = 3,
                 attn_resolutions=(32, 16, 8),
                 dropout: float = 0.10,
                 label_dropout: float = 0):
        if img_resolution % (2 ** (len(channel_mult) - 1)):
            raise ValueError(f"DhariwalUNet: img_resolution {img_resolution} is not divisible by 2^{len(channel_mult) - 1} "
                             f"(one halving per extra entry of channel_mult {list(channel_mult)})")
        super().__init__()
        channel_mult, attn_resolutions = list(channel_mult), list(attn_resolutions)
        self.init_kwargs = dict(
            img_resolution=img_resolution, in_channels=in_channels, out_channels=out_channels, label_dim=label_dim,
            augment_dim=augment_dim, model_channels=model_channels, channel_mult=channel_mult,
            channel_mult_emb=channel_mult_emb, num_blocks=num_blocks, attn_resolutions=attn_resolutions,
            dropout=dropout, label_dropout=label_dropout)
        self.label_dropout = label_dropout
        emb_channels = model_channels * channel_mult_emb
        # Init scales of EDM's DhariwalUNet (kaiming_uniform * sqrt(1/3); zero-init last layers).
        init = dict(init_mode="kaiming_uniform", init_weight=math.sqrt(1 / 3), init_bias=math.sqrt(1 / 3))
        init_zero = dict(init_mode="kaiming_uniform", init_weight=0, init_bias=0)
        block_kwargs = dict(emb_channels=emb_channels, channels_per_head=64, dropout=dropout, init=init, init_zero=init_zero)

        self.map_noise = PositionalEmbedding(num_channels=model_channels)
        self.map_augment = Linear(augment_dim, model_channels, bias=False, **init_zero) if augment_dim else None
        self.map_layer0 = Linear(model_channels, emb_channels, **init)
        self.map_layer1 = Linear(emb_channels, emb_channels, **init)
        self.map_label = (Linear(label_dim, emb_channels, bias=False, init_mode="kaiming_normal", init_weight=math.sqrt(label_dim))
                          if label_dim else None)

        self.enc = nn.ModuleDict()
        cout = in_channels
        for level, mult in enumerate(channel_mult):
            res = img_resolution >> level
            if level == 0:
                cin, cout = cout, model_channels * mult
                self.enc[f"{res}x{res}_conv"] = Conv2d(cin, cout, kernel=3, **init)
            else:
                self.enc[f"{res}x{res}_down"] = UNetBlock(cout, cout, down=True, **block_kwargs)
            for idx in range(num_blocks):
                cin, cout = cout, model_channels * mult
                self.enc[f"{res}x{res}_block{idx}"] = UNetBlock(cin, cout, attention=res in attn_resolutions, **block_kwargs)
        skips = [block.out_channels for block in self.enc.values()]

        self.dec = nn.ModuleDict()
        for level, mult in reversed(list(enumerate(channel_mult))):
            res = img_resolution >> level
            if level == len(channel_mult) - 1:
                self.dec[f"{res}x{res}_in0"] = UNetBlock(cout, cout, attention=True, **block_kwargs)
                self.dec[f"{res}x{res}_in1"] = UNetBlock(cout, cout, **block_kwargs)
            else:
                self.dec[f"{res}x{res}_up"] = UNetBlock(cout, cout, up=True, **block_kwargs)
            for idx in range(num_blocks + 1):
                cin, cout = cout + skips.pop(), model_channels * mult
                self.dec[f"{res}x{res}_block{idx}"] = UNetBlock(cin, cout, attention=res in attn_resolutions, **block_kwargs)
        self.out_norm = GroupNorm(num_channels=cout)
        self.out_conv = Conv2d(cout, out_channels, kernel=3, **init_zero)

    def forward(self, x, noise_labels, class_labels, augment_labels=None, read_out: str = "decoder"):
        """The U-Net; `read_out` as SongUNet.forward ('encoder' stops after the last encoder block)."""
        if read_out not in READ_OUTS:
            raise ValueError(f"DhariwalUNet: read_out {read_out!r} must be one of {READ_OUTS}")
        emb = self.map_noise(noise_labels)
        if self.map_augment is not None and augment_labels is not None:
            emb = emb + self.map_augment(augment_labels)
        emb = F.silu(self.map_layer0(emb))
        emb = self.map_layer1(emb)
        if self.map_label is not None:
            if class_labels is None:
                raise ValueError("DhariwalUNet: this network is class-conditional (label_dim > 0); pass class_labels")
            tmp = class_labels
            if self.training and self.label_dropout:
                keep = torch.rand([x.shape[0], 1], device=x.device) >= self.label_dropout
                tmp = tmp * keep.to(tmp.dtype)
            emb = emb + self.map_label(tmp).to(emb.dtype)
        emb = F.silu(emb)

        skips = []
        for block in self.enc.values():
            x = block(x, emb) if isinstance(block, UNetBlock) else block(x)
            skips.append(x)
        if read_out == "encoder":
            return x
        encoded = x
        for block in self.dec.values():
            if x.shape[1] != block.in_channels:
                x = torch.cat([x, skips.pop().to(x.dtype)], dim=1)
            x = block(x, emb)
        out = self.out_conv(F.silu(self.out_norm(x)))
        return (out, encoded) if read_out == "encoder_decoder" else out
