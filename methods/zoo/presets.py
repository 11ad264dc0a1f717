"""Named networks: EDM's published checkpoints and the embedded digits networks.

EDM presets follow EDM's README table "exact training configurations" and train.py:
--arch ddpmpp|ncsnpp|adm picks SongUNet(DDPM++)/SongUNet(NCSN++)/DhariwalUNet with
model_channels 128 (192 for ADM) and channel_mult [2,2,2] (ADM [1,2,3,4]); --cres overrides
channel_mult; augment_dim = 9 whenever --augment > 0; dropout defaults to 0.13. EDM's
checkpoints keep EDMPrecond's defaults sigma_min=0, sigma_max=inf (samplers clamp to
[0.002, 80]). The digits networks are "network A" of /work/shared/notes/digits-default.md.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any

from torch import nn

from ..core.config import ConfigError, suggest
from .precond import PRECOND_TYPES, accepted_kwargs, model_class
from .songunet import DDPMPP, NCSNPP

EDM_URL = "https://nvlabs-fi-cdn.nvidia.com/edm/pretrained/"
EDM_BASELINE_URL = "https://nvlabs-fi-cdn.nvidia.com/edm/pretrained/baseline/"


@dataclass(frozen=True)
class Preset:
    name: str
    precond: str                      # class name in PRECOND_TYPES
    precond_kwargs: dict[str, Any]    # img_resolution, img_channels, label_dim, use_fp16, schedule
    model_type: str                   # class name in MODEL_TYPES
    model_kwargs: dict[str, Any]
    description: str
    checkpoint: str | None = None     # official file name, e.g. edm-cifar10-32x32-cond-vp.pkl
    url: str | None = None            # where that file is published
    notes: str = ""
    tags: tuple[str, ...] = field(default_factory=tuple)


def _edm_song(dataset: str, res: int, cond: bool, arch: str, channel_mult, dropout: float, augment_dim: int) -> Preset:
    name = f"edm-{dataset}-{res}x{res}-{'cond' if cond else 'uncond'}-{arch}"
    flavour = DDPMPP if arch == "vp" else NCSNPP
    label_dim = 10 if cond else 0
    return Preset(
        name=name, precond="EDMPrecond",
        precond_kwargs=dict(img_resolution=res, img_channels=3, label_dim=label_dim, use_fp16=False),
        model_type="SongUNet",
        model_kwargs=dict(model_channels=128, channel_mult=list(channel_mult), num_blocks=4, attn_resolutions=[16],
                          dropout=dropout, augment_dim=augment_dim, **copy.deepcopy(flavour)),
        description=f"EDM {'DDPM++' if arch == 'vp' else 'NCSN++'} {dataset} {res}x{res} {'class-conditional' if cond else 'unconditional'}",
        checkpoint=f"{name}.pkl", url=f"{EDM_URL}{name}.pkl", tags=("edm", "published"))


def _edm_presets() -> list[Preset]:
    out = []
    for cond in (True, False):
        for arch in ("vp", "ve"):
            # EDM README: cifar10 `--cond=0/1 --arch=ddpmpp/ncsnpp` (dropout 0.13 and augment 0.12 defaults).
            out.append(_edm_song("cifar10", 32, cond, arch, [2, 2, 2], dropout=0.13, augment_dim=9))
    for dataset, dropout in (("ffhq", 0.05), ("afhqv2", 0.25)):
        for arch in ("vp", "ve"):
            # EDM README: `--cres=1,2,2,2 --dropout=0.05 (ffhq) / 0.25 (afhqv2) --augment=0.15`.
            out.append(_edm_song(dataset, 64, False, arch, [1, 2, 2, 2], dropout=dropout, augment_dim=9))
    # EDM README: imagenet `--cond=1 --arch=adm --dropout=0.10 --augment=0 --fp16=1`.
    out.append(Preset(
        name="edm-imagenet-64x64-cond-adm", precond="EDMPrecond",
        precond_kwargs=dict(img_resolution=64, img_channels=3, label_dim=1000, use_fp16=True),
        model_type="DhariwalUNet",
        model_kwargs=dict(model_channels=192, channel_mult=[1, 2, 3, 4], num_blocks=3, attn_resolutions=[32, 16, 8],
                          dropout=0.10, augment_dim=0),
        description="EDM ADM ImageNet 64x64 class-conditional",
        checkpoint="edm-imagenet-64x64-cond-adm.pkl", url=f"{EDM_URL}edm-imagenet-64x64-cond-adm.pkl",
        tags=("edm", "published")))
    return out


def _baseline_presets() -> list[Preset]:
    # EDM README: derived from score_sde (CIFAR-10, VP/VE, no augmentation) and from
    # guided-diffusion (ImageNet ADM under iDDPM preconditioning). Architecture as EDM's
    # reimplementation; dropout 0.1 as in those sources.
    note = "architecture of EDM's converted baseline; the checkpoint file carries its own kwargs"
    out = []
    for arch, precond, flavour, label in (("vp", "VPPrecond", DDPMPP, "DDPM++"), ("ve", "VEPrecond", NCSNPP, "NCSN++")):
        name = f"baseline-cifar10-32x32-uncond-{arch}"
        out.append(Preset(
            name=name, precond=precond,
            precond_kwargs=dict(img_resolution=32, img_channels=3, label_dim=0, use_fp16=False),
            model_type="SongUNet",
            model_kwargs=dict(model_channels=128, channel_mult=[2, 2, 2], num_blocks=4, attn_resolutions=[16],
                              dropout=0.10, augment_dim=0, **copy.deepcopy(flavour)),
            description=f"score_sde {label} CIFAR-10 unconditional under {precond} (EDM config A baseline)",
            checkpoint=f"{name}.pkl", url=f"{EDM_BASELINE_URL}{name}.pkl", notes=note, tags=("baseline", "published")))
    out.append(Preset(
        name="baseline-imagenet-64x64-cond-adm", precond="iDDPMPrecond",
        precond_kwargs=dict(img_resolution=64, img_channels=3, label_dim=1000, use_fp16=False),
        model_type="DhariwalUNet",
        model_kwargs=dict(model_channels=192, channel_mult=[1, 2, 3, 4], num_blocks=3, attn_resolutions=[32, 16, 8],
                          dropout=0.10, augment_dim=0),
        description="guided-diffusion ADM ImageNet 64x64 class-conditional under iDDPMPrecond",
        checkpoint="baseline-imagenet-64x64-cond-adm.pkl", url=f"{EDM_BASELINE_URL}baseline-imagenet-64x64-cond-adm.pkl",
        notes=note, tags=("baseline", "published")))
    return out


def _digits(name: str, res: int, cond: bool) -> Preset:
    # digits-default.md, network A: SongUNet channels 32, mult [1,2], 1 block, no attention,
    # under EDMPrecond, dropout 0, 1 channel, one-hot labels (10 classes).
    return Preset(
        name=name, precond="EDMPrecond",
        precond_kwargs=dict(img_resolution=res, img_channels=1, label_dim=10 if cond else 0, use_fp16=False),
        model_type="SongUNet",
        model_kwargs=dict(model_channels=32, channel_mult=[1, 2], num_blocks=1, attn_resolutions=[], dropout=0.0,
                          augment_dim=0, **copy.deepcopy(DDPMPP)),
        description=f"digits teacher (network A) {res}x{res} {'class-conditional' if cond else 'unconditional'}",
        tags=("digits",))


PRESETS: dict[str, Preset] = {p.name: p for p in [
    *_edm_presets(), *_baseline_presets(),
    _digits("digits-8x8-cond", 8, True), _digits("digits-8x8-uncond", 8, False),
    _digits("digits-16x16-cond", 16, True), _digits("digits-16x16-uncond", 16, False),
]}


def get_preset(name: str) -> Preset:
    try:
        return PRESETS[name]
    except KeyError:
        raise ConfigError(f"unknown network preset {name!r}{suggest(name, PRESETS)}; "
                          f"`onestep zoo` lists them: {', '.join(PRESETS)}") from None


def resolve_preset(name: str, **overrides) -> tuple[str, dict, str, dict]:
    """(precond class name, precond kwargs, model type, model kwargs) after overrides.

    Special override keys: `precond` (e.g. "OneStepPrecond") and `model_type`. Every other key
    goes to the preconditioner if it takes it, else to the raw network; unknown keys fail.
    """
    preset = get_preset(name)
    precond = overrides.pop("precond", preset.precond)
    if precond not in PRECOND_TYPES:
        raise ConfigError(f"unknown precond {precond!r}{suggest(precond, PRECOND_TYPES)}; choose one of {sorted(PRECOND_TYPES)}")
    model_type = overrides.pop("model_type", preset.model_type)
    model_cls = model_class(model_type)
    pkw = dict(copy.deepcopy(preset.precond_kwargs))
    mkw = dict(copy.deepcopy(preset.model_kwargs))
    precond_keys = accepted_kwargs(PRECOND_TYPES[precond])
    model_keys = accepted_kwargs(model_cls) - {"img_resolution", "in_channels", "out_channels", "label_dim"}
    for key, value in overrides.items():
        if key in precond_keys:
            pkw[key] = value
        elif key in model_keys:
            mkw[key] = value
        else:
            choices = sorted(precond_keys | model_keys | {"precond", "model_type"})
            raise ConfigError(f"build_network({name!r}): unknown override {key!r}{suggest(key, choices)}; "
                              f"valid keys: {', '.join(choices)}")
    return precond, pkw, model_type, mkw


def build_network(name: str, **overrides) -> nn.Module:
    """A freshly initialised network of preset `name` (weights: see onestep.methods.checkpoints).

    >>> build_network("digits-8x8-cond")                      # EDMPrecond(SongUNet) teacher
    >>> build_network("digits-8x8-cond", precond="OneStepPrecond", sigma_max=80.0)
    """
    precond, pkw, model_type, mkw = resolve_preset(name, **overrides)
    return PRECOND_TYPES[precond](**pkw, model_type=model_type, **mkw)


def preset_info(name: str) -> dict:
    """JSON-able description of a preset: classes, kwargs, checkpoint file and URL."""
    p = get_preset(name)
    return {"name": p.name, "description": p.description, "precond": p.precond,
            "precond_kwargs": copy.deepcopy(p.precond_kwargs), "model_type": p.model_type,
            "model_kwargs": copy.deepcopy(p.model_kwargs), "checkpoint": p.checkpoint, "url": p.url,
            "notes": p.notes, "tags": list(p.tags)}
