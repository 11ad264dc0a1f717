"""Pre-flight checks of the weight files a run's *method* needs (not the metrics'): the frozen
feature networks of the GAN discriminators (VGG16-BN, EfficientNet-lite0, DeiT, the VGG16
baseline). `validate` and `sweep` call it so a missing file is found on the login node, not
after a job has queued.

Generic on purpose: it reads any discriminator config found in a run's resolved method config
(a mapping with `kind` and `feature_networks`, wherever a method keeps it) and asks
`feature_network_files` where each network's file is looked up and which variable moves it.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Iterable, Mapping

CACHE_ENV = "ONESTEP_CACHE"  # feature-network files live in $ONESTEP_CACHE/feature_networks by default
TORCH_HOME_ENV = "TORCH_HOME"  # the VGG16 baseline reads torchvision's hub file


def feature_network_files(names: Iterable[str], weights_dir: str | None = None) -> dict[str, tuple[str, list[Path]]]:
    """{feature network: (environment variable or config key that moves it, candidate files)};
    networks that need no file (the embedded digits network) are absent."""
    from onestep.methods.discriminators.feature_networks import TIMM_FEATURE_NETWORKS, WEIGHT_SUFFIXES

    folder = Path(weights_dir).expanduser() if weights_dir else None
    var = ("discriminator.weights_dir" if weights_dir else
           f"${CACHE_ENV} (looked up in $ONESTEP_CACHE/feature_networks/) or discriminator.weights_dir")
    out = {}
    for name in names:
        spec = TIMM_FEATURE_NETWORKS.get(name)
        if spec is None:
            continue
        if folder is None:
            from onestep.methods.core.paths import cache_root

            folder_n = cache_root() / "feature_networks"
        else:
            folder_n = folder
        out[name] = (var, [folder_n / f"{spec.timm_name}{s}" for s in WEIGHT_SUFFIXES])
    return out


def _discriminator_configs(tree: Any, where: str = "method") -> list[tuple[str, Mapping]]:
    found = []
    if isinstance(tree, Mapping):
        if "kind" in tree and ("feature_networks" in tree or tree.get("kind") == "vgg16"):
            found.append((where, tree))
        for k, v in tree.items():
            if isinstance(v, (Mapping, list)):
                found.extend(_discriminator_configs(v, f"{where}.{k}"))
    elif isinstance(tree, list):
        for i, v in enumerate(tree):
            found.extend(_discriminator_configs(v, f"{where}[{i}]"))
    return found


def method_weight_files(method_config: Mapping) -> list[tuple[str, str, list[Path]]]:
    """[(what, variable, candidate files)] that a run's method config needs to exist."""
    out = []
    for where, cfg in _discriminator_configs(method_config):
        if cfg.get("random_weights"):
            continue  # tests/perf: random weights on purpose, results marked untrained
        if cfg.get("kind") == "vgg16":
            from onestep.methods.discriminators.vgg_baseline import vgg16_weights_path

            given = cfg.get("vgg16_weights") or None
            var = (f"{where}.vgg16_weights" if given else
                   f"${TORCH_HOME_ENV} (looked up in $TORCH_HOME/hub/checkpoints/) or {where}.vgg16_weights")
            out.append((f"{where}: VGG16 baseline", var, [vgg16_weights_path(given)]))
            continue
        for name, (var, files) in feature_network_files(cfg.get("feature_networks") or [], cfg.get("weights_dir") or None).items():
            out.append((f"{where}: feature network {name}", var, files))
    return out


def method_weight_problems(runs) -> list[str]:
    """One message per missing file (deduplicated over runs), naming the variable and the file."""
    seen, problems = set(), []
    for r in runs:
        for what, var, files in method_weight_files(r.method_config):
            if any(f.is_file() for f in files) or str(files[0]) in seen:
                continue
            seen.add(str(files[0]))
            also = f" (also tried {', '.join(f.suffix for f in files[1:])})" if len(files) > 1 else ""
            problems.append(f"{r.label}: {what}: weights file {files[0]} not found{also}; put it there, or set {var}")
    return problems


def _embedding_files(cfg: Mapping) -> list[Path]:
    from onestep.methods.core.paths import cache_root
    from onestep.methods.discriminators import CLASS_EMBEDDING_FILE
    from onestep.methods.discriminators.feature_networks import WEIGHT_SUFFIXES

    folder = Path(cfg["weights_dir"]).expanduser() if cfg.get("weights_dir") else cache_root() / "feature_networks"
    return [folder / f"{CLASS_EMBEDDING_FILE}{s}" for s in WEIGHT_SUFFIXES]


def class_embedding_problems(runs, conditional: bool) -> tuple[list[str], list[str]]:
    """(errors, warnings) for the conditional projected heads' ImageNet class embedding:
    `class_embedding: pretrained` without the file is an error; `auto` (the default) trains with a
    random embedding, recorded as such, which is worth a warning before the job queues."""
    errors: list[str] = []
    warnings: list[str] = []
    if not conditional:
        return errors, warnings
    seen = set()
    for r in runs:
        for where, cfg in _discriminator_configs(r.method_config):
            mode = cfg.get("class_embedding", "auto")
            if cfg.get("kind") != "projected" or cfg.get("random_weights") or mode == "random":
                continue
            files = _embedding_files(cfg)
            if any(f.is_file() for f in files) or (str(files[0]), mode) in seen:
                continue
            seen.add((str(files[0]), mode))
            fix = (f"convert the official in_embeddings/tf_efficientnet_lite0.pkl once where it is trusted to "
                   f"{files[0]} ({{'weight': (1000, 320)}}; docs/ARCHITECTURE.md), or set {where}.weights_dir")
            if mode == "pretrained":
                errors.append(f"{r.label}: {where}: class embedding file {files[0]} not found; {fix}")
            else:
                warnings.append(f"{r.label}: {where}: class embedding file {files[0]} not found: the conditional heads "
                                f"will use a random embedding (recorded as class_embedding: random); {fix}")
    return errors, warnings


def missing_method_files(runs) -> list[Path]:
    """The first candidate file of every missing method weight file (for --dry-run's stand-ins)."""
    out = []
    for r in runs:
        for _, _, files in method_weight_files(r.method_config):
            if not any(f.is_file() for f in files) and files[0] not in out:
                out.append(files[0])
    return out


__all__ = ["class_embedding_problems", "feature_network_files", "method_weight_files", "method_weight_problems", "missing_method_files"]
