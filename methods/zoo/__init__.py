"""The model zoo: EDM-compatible U-Nets, preconditioners, presets and parameter roles.

    from onestep.methods.zoo import build_network, OneStepPrecond
    teacher = build_network("digits-8x8-cond")          # EDMPrecond(SongUNet)
    student = OneStepPrecond.from_teacher(teacher)      # same weights, GDD/D2O parameterization

Modules: layers (EDM building blocks), songunet (DDPM++/NCSN++), dhariwal (ADM), precond
(VP/VE/iDDPM/EDM/OneStep), presets (named networks), config (network_config round trip),
roles (parameter roles for freezing), readout (encoder read-outs: SiDA's map, DMD2's bottleneck), step_conditioned (SFD-v's networks).
"""
from .config import network_config, network_from_config
from .dhariwal import DhariwalUNet
from .layers import Conv2d, FourierEmbedding, GroupNorm, Linear, PositionalEmbedding, UNetBlock
from .precond import (MODEL_TYPES, PRECOND_TYPES, EDMPrecond, OneStepPrecond, Precond, VEPrecond, VPPrecond,
                      iDDPMPrecond)
from .presets import PRESETS, Preset, build_network, get_preset, preset_info, resolve_preset
from .readout import denoise_with_encoder_map, encoder_features, set_dropout, sida_encoder_map
from .roles import (FREEZE_GROUPS, ROLES, format_share_table, in_resampling_block, parameter_roles, role_counts,
                    role_shares, select_parameters)
from .songunet import DDPMPP, NCSNPP, SongUNet
from .step_conditioned import StepDhariwalUNet, StepSongUNet, step_conditioned_from, step_conditioned_network

__all__ = [
    "SongUNet", "DhariwalUNet", "DDPMPP", "NCSNPP",
    "Precond", "VPPrecond", "VEPrecond", "iDDPMPrecond", "EDMPrecond", "OneStepPrecond",
    "MODEL_TYPES", "PRECOND_TYPES",
    "PRESETS", "Preset", "build_network", "get_preset", "preset_info", "resolve_preset",
    "network_config", "network_from_config",
    "ROLES", "FREEZE_GROUPS", "parameter_roles", "role_counts", "role_shares", "select_parameters",
    "format_share_table", "in_resampling_block",
    "encoder_features", "sida_encoder_map", "denoise_with_encoder_map", "set_dropout",
    "Conv2d", "Linear", "GroupNorm", "UNetBlock", "PositionalEmbedding", "FourierEmbedding",
    "StepSongUNet", "StepDhariwalUNet", "step_conditioned_network", "step_conditioned_from",
]
