"""SongUNet: the DDPM++ / NCSN++ U-Nets (Song et al. 2021) in EDM's layout.

DDPM++: embedding_type='positional', channel_mult_noise=1, encoder_type='standard',
resample_filter=[1,1]. NCSN++: embedding_type='fourier', channel_mult_noise=2,
encoder_type='residual', resample_filter=[1,3,3,1] (EDM train.py, --arch). `DDPMPP` and
`NCSNPP` hold those settings.
"""
from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F

from .layers import Conv2d, FourierEmbedding, GroupNorm, Linear, PositionalEmbedding, UNetBlock

DDPMPP = dict(embedding_type="positional", channel_mult_noise=1, encoder_type="standard",
              decoder_type="standard", resample_filter=[1, 1])
READ_OUTS = ("decoder", "encoder", "encoder_decoder")
NCSNPP = dict(embedding_type="fourier", channel_mult_noise=2, encoder_type="residual",
              decoder_type="standard", resample_filter=[1, 3, 3, 1])


class SongUNet(nn.Module):
    def __init__(self,
                 img_resolution: int,            # input/output resolution
                 in_channels: int,               # input color channels
                 out_channels: int,              # output color channels
                 label_dim: int = 0,             # number of classes, 0 = unconditional
                 augment_dim: int = 0,           # augmentation label size, 0 = none
                 model_channels: int = 128,      # base channel count
                 channel_mult=(1, 2, 2, 2),      # per-resolution channel multipliers
                 channel_mult_emb: int = 4,      # embedding width = model_channels * this
                 num_blocks: int = 4,            # residual blocks per resolution
                 attn_resolutions=(16,),         # resolutions with self-attention
                 dropout: float = 0.10,
                 label_dropout: float = 0,       # class-label dropout (classifier-free guidance)
                 embedding_type: str = "positional",
                 channel_mult_noise: int = 1,
                 encoder_type: str = "standard",
                 decoder_type: str = "standard",
                 resample_filter=(1, 1)):
        if embedding_type not in ("fourier", "positional"):
            raise ValueError(f"SongUNet: embedding_type {embedding_type!r} must be 'positional' (DDPM++) or 'fourier' (NCSN++)")
        if encoder_type not in ("standard", "skip", "residual"):
            raise ValueError(f"SongUNet: encoder_type {encoder_type!r} must be 'standard', 'skip' or 'residual'")
        if decoder_type not in ("standard", "skip"):
            raise ValueError(f"SongUNet: decoder_type {decoder_type!r} must be 'standard' or 'skip'")
        if img_resolution % (2 ** (len(channel_mult) - 1)):
            raise ValueError(f"SongUNet: img_resolution {img_resolution} is not divisible by 2^{len(channel_mult) - 1} "
                             f"(one halving per extra entry of channel_mult {list(channel_mult)})")
        super().__init__()
        channel_mult, attn_resolutions, resample_filter = list(channel_mult), list(attn_resolutions), list(resample_filter)
        self.init_kwargs = dict(
            img_resolution=img_resolution, in_channels=in_channels, out_channels=out_channels, label_dim=label_dim,
            augment_dim=augment_dim, model_channels=model_channels, channel_mult=channel_mult,
            channel_mult_emb=channel_mult_emb, num_blocks=num_blocks, attn_resolutions=attn_resolutions,
            dropout=dropout, label_dropout=label_dropout, embedding_type=embedding_type,
            channel_mult_noise=channel_mult_noise, encoder_type=encoder_type, decoder_type=decoder_type,
            resample_filter=resample_filter)
        self.label_dropout = label_dropout
        emb_channels = model_channels * channel_mult_emb
        noise_channels = model_channels * channel_mult_noise
        # Init scales of EDM's SongUNet (xavier_uniform; 1e-5 for last convs; sqrt(0.2) for qkv).
        init = dict(init_mode="xavier_uniform")
        init_zero = dict(init_mode="xavier_uniform", init_weight=1e-5)
        init_attn = dict(init_mode="xavier_uniform", init_weight=math.sqrt(0.2))
        block_kwargs = dict(emb_channels=emb_channels, num_heads=1, dropout=dropout, skip_scale=math.sqrt(0.5), eps=1e-6,
                            resample_filter=resample_filter, resample_proj=True, adaptive_scale=False,
                            init=init, init_zero=init_zero, init_attn=init_attn)

        # Mapping network: noise level (+ class, + augmentation labels) -> embedding.
        if embedding_type == "positional":
            self.map_noise = PositionalEmbedding(num_channels=noise_channels, endpoint=True)
        else:
            self.map_noise = FourierEmbedding(num_channels=noise_channels)
        self.map_label = Linear(label_dim, noise_channels, **init) if label_dim else None
        self.map_augment = Linear(augment_dim, noise_channels, bias=False, **init) if augment_dim else None
        self.map_layer0 = Linear(noise_channels, emb_channels, **init)
        self.map_layer1 = Linear(emb_channels, emb_channels, **init)

        # Encoder.
        self.enc = nn.ModuleDict()
        cout = in_channels
        caux = in_channels
        for level, mult in enumerate(channel_mult):
            res = img_resolution >> level
            if level == 0:
                cin, cout = cout, model_channels
                self.enc[f"{res}x{res}_conv"] = Conv2d(cin, cout, kernel=3, **init)
            else:
                self.enc[f"{res}x{res}_down"] = UNetBlock(cout, cout, down=True, **block_kwargs)
                if encoder_type == "skip":
                    self.enc[f"{res}x{res}_aux_down"] = Conv2d(caux, caux, kernel=0, down=True, resample_filter=resample_filter)
                    self.enc[f"{res}x{res}_aux_skip"] = Conv2d(caux, cout, kernel=1, **init)
                if encoder_type == "residual":
                    self.enc[f"{res}x{res}_aux_residual"] = Conv2d(caux, cout, kernel=3, down=True, resample_filter=resample_filter,
                                                                  fused_resample=True, **init)
                    caux = cout
            for idx in range(num_blocks):
                cin, cout = cout, model_channels * mult
                self.enc[f"{res}x{res}_block{idx}"] = UNetBlock(cin, cout, attention=res in attn_resolutions, **block_kwargs)
        skips = [block.out_channels for name, block in self.enc.items() if "aux" not in name]

        # Decoder.
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
                attn = idx == num_blocks and res in attn_resolutions
                self.dec[f"{res}x{res}_block{idx}"] = UNetBlock(cin, cout, attention=attn, **block_kwargs)
            if decoder_type == "skip" or level == 0:
                if decoder_type == "skip" and level < len(channel_mult) - 1:
                    self.dec[f"{res}x{res}_aux_up"] = Conv2d(out_channels, out_channels, kernel=0, up=True, resample_filter=resample_filter)
                self.dec[f"{res}x{res}_aux_norm"] = GroupNorm(num_channels=cout, eps=1e-6)
                self.dec[f"{res}x{res}_aux_conv"] = Conv2d(cout, out_channels, kernel=3, **init_zero)

    def forward(self, x, noise_labels, class_labels, augment_labels=None, read_out: str = "decoder"):
        """The U-Net. `read_out` (as SiDA's `return_flag`): 'decoder' returns the output;
        'encoder' returns the last encoder block's output and skips the middle and decoder
        blocks; 'encoder_decoder' returns (output, that encoder output) from one pass."""
        if read_out not in READ_OUTS:
            raise ValueError(f"SongUNet: read_out {read_out!r} must be one of {READ_OUTS}")
        emb = self._embedding(noise_labels, class_labels, augment_labels, x)
        x, skips = self._encode(x, emb)
        if read_out == "encoder":
            return x
        out = self._decode(x, skips, emb)
        return (out, x) if read_out == "encoder_decoder" else out

    def _embedding(self, noise_labels, class_labels, augment_labels, x):
        emb = self.map_noise(noise_labels)
        emb = emb.reshape(emb.shape[0], 2, -1).flip(1).reshape(*emb.shape)  # swap cos/sin as EDM does
        if self.map_label is not None:
            if class_labels is None:
                raise ValueError("SongUNet: this network is class-conditional (label_dim > 0); pass class_labels")
            tmp = class_labels
            if self.training and self.label_dropout:
                keep = torch.rand([x.shape[0], 1], device=x.device) >= self.label_dropout
                tmp = tmp * keep.to(tmp.dtype)
            emb = emb + self.map_label(tmp * math.sqrt(self.map_label.in_features))
        if self.map_augment is not None and augment_labels is not None:
            emb = emb + self.map_augment(augment_labels)
        emb = F.silu(self.map_layer0(emb))
        return F.silu(self.map_layer1(emb))

    def _encode(self, x, emb):
        skips = []
        aux = x
        for name, block in self.enc.items():
            if "aux_down" in name:
                aux = block(aux)
            elif "aux_skip" in name:
                x = skips[-1] = x + block(aux)
            elif "aux_residual" in name:
                x = skips[-1] = aux = (x + block(aux)) / math.sqrt(2)
            else:
                x = block(x, emb) if isinstance(block, UNetBlock) else block(x)
                skips.append(x)
        return x, skips

    def _decode(self, x, skips, emb):
        aux = None
        tmp = None
        for name, block in self.dec.items():
            if "aux_up" in name:
                aux = block(aux)
            elif "aux_norm" in name:
                tmp = block(x)
            elif "aux_conv" in name:
                tmp = block(F.silu(tmp))
                aux = tmp if aux is None else tmp + aux
            else:
                if x.shape[1] != block.in_channels:
                    skip = skips.pop()
                    x = torch.cat([x, skip.to(x.dtype)], dim=1)
                x = block(x, emb)
        return aux
