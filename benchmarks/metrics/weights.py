"""Find the weights files of the real feature networks, checksum them, load them safely.

Search order for each network (first hit wins):
  1. an explicit path given by the caller,
  2. the network's environment variable (e.g. ONESTEP_INCEPTION_WEIGHTS=/path/file.pth),
  3. our cache `cache_dir('weights')`, then the libraries' own caches
     ($TORCH_HOME/hub/checkpoints, the Hugging Face hub cache for open-clip),
  4. a download from the URL the libraries use (short timeout), written atomically,
  5. otherwise an error naming the file and where to put it.

Every resolved file carries its sha256. Where a released checksum is known (torch hub
file names carry the first 8 hex digits of the sha256; OpenAI's CLIP URL carries the full
one) a file that does not match is *not* the released network and is flagged `untrained`, so
every number computed from it says so. Where no released checksum is known, the file is
flagged untrained only when the caller says it is random.

Loading never executes code from a file: state dicts go through safetensors or
`torch.load(weights_only=True)`.
"""
from __future__ import annotations

import hashlib
import os
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Mapping

import torch

from onestep.methods.core.atomic import atomic_write
from onestep.methods.core.paths import cache_dir


def _torch_hub_checkpoints() -> Path:
    return Path(torch.hub.get_dir()) / "checkpoints"


def _hf_snapshots(repo: str) -> list[Path]:
    """Snapshot folders of a Hugging Face hub repo in the local HF cache (newest last)."""
    home = Path(os.environ.get("HF_HUB_CACHE") or Path(os.environ.get("HF_HOME", Path.home() / ".cache" / "huggingface")) / "hub")
    base = home / ("models--" + repo.replace("/", "--")) / "snapshots"
    return sorted(base.glob("*"), key=lambda p: p.stat().st_mtime) if base.is_dir() else []


@dataclass(frozen=True)
class WeightsSpec:
    """Where one network's weights come from and how to recognise the released file."""

    key: str
    filenames: tuple[str, ...]  # accepted file names, preferred first
    env_var: str
    url: str | None  # where the libraries download it from
    released_sha256: tuple[str, ...] = ()  # full checksums or torch-hub 8-digit prefixes
    library_dirs: Callable[[], list[Path]] = field(default=lambda: [_torch_hub_checkpoints()])
    note: str = ""


SPECS: dict[str, WeightsSpec] = {
    # torch-fidelity 0.4.0 feature_extractor_inceptionv3.URL_INCEPTION_V3; "6726825d" is the
    # sha256 prefix torch.hub checks on download.
    "inception-v3-compat": WeightsSpec(
        key="inception-v3-compat",
        filenames=("weights-inception-2015-12-05-6726825d.pth",),
        env_var="ONESTEP_INCEPTION_WEIGHTS",
        url="https://github.com/toshas/torch-fidelity/releases/download/v0.2.0/weights-inception-2015-12-05-6726825d.pth",
        released_sha256=("6726825d",),
        note="torch-fidelity's Inception-v3 (TF 2015-12-05 graph converted to a PyTorch state dict)",
    ),
    # torchvision's VGG16 (IMAGENET1K_V1), which torch-fidelity's vgg16 extractor loads.
    "vgg16": WeightsSpec(
        key="vgg16",
        filenames=("vgg16-397923af.pth",),
        env_var="ONESTEP_VGG16_WEIGHTS",
        url="https://download.pytorch.org/models/vgg16-397923af.pth",
        released_sha256=("397923af",),
        note="torchvision VGG16 IMAGENET1K_V1 state dict",
    ),
    # OpenAI CLIP ViT-B/32: the URL carries the full sha256 of the released file (open_clip
    # pretrained.py _VITB32['openai']). open-clip's HF-hub copy is the same weights as safetensors.
    "clip-vit-b-32": WeightsSpec(
        key="clip-vit-b-32",
        filenames=("ViT-B-32.pt", "open_clip_model.safetensors", "open_clip_pytorch_model.bin"),
        env_var="ONESTEP_CLIP_WEIGHTS",
        url="https://openaipublic.azureedge.net/clip/models/40d365715913c9da98579312b702a82c18be219cc2a73407c4526f58eba950af/ViT-B-32.pt",
        released_sha256=("40d365715913c9da98579312b702a82c18be219cc2a73407c4526f58eba950af",),
        library_dirs=lambda: [_torch_hub_checkpoints(), Path.home() / ".cache" / "clip",
                              *_hf_snapshots("timm/vit_base_patch32_clip_224.openai")],
        note="OpenAI CLIP ViT-B/32 (open-clip 'ViT-B-32' / 'openai')",
    ),
    # DINOv2 ViT-L/14 as EDM2 and SiDA use it (torch hub facebookresearch/dinov2 'dinov2_vitl14').
    # No released checksum is published with the file.
    "dinov2-vitl14": WeightsSpec(
        key="dinov2-vitl14",
        filenames=("dinov2_vitl14_pretrain.pth",),
        env_var="ONESTEP_DINOV2_WEIGHTS",
        url="https://dl.fbaipublicfiles.com/dinov2/dinov2_vitl14/dinov2_vitl14_pretrain.pth",
        note="DINOv2 ViT-L/14 (torch hub facebookresearch/dinov2, dinov2_vitl14)",
    ),
}


class WeightsNotFoundError(FileNotFoundError):
    pass


class WeightsFormatError(ValueError):
    pass


@dataclass(frozen=True)
class ResolvedWeights:
    key: str
    path: Path
    sha256: str
    source: str  # "argument", "env", "cache", "download"
    released: bool  # sha256 matches a released checksum
    untrained: bool  # numbers from these weights must be labelled UNTRAINED


_SHA_CACHE: dict[tuple[str, int, int], str] = {}


def sha256_file(path: str | os.PathLike) -> str:
    """sha256 of a file, memoised on (path, size, mtime) because the files are large."""
    path = Path(path)
    st = path.stat()
    key = (str(path.resolve()), st.st_size, st.st_mtime_ns)
    if key not in _SHA_CACHE:
        h = hashlib.sha256()
        with open(path, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                h.update(chunk)
        _SHA_CACHE[key] = h.hexdigest()
    return _SHA_CACHE[key]


def is_released(spec: WeightsSpec, sha256: str) -> bool:
    return any(sha256.startswith(known) for known in spec.released_sha256)


def _candidates(spec: WeightsSpec) -> list[Path]:
    dirs = [cache_dir("weights"), *spec.library_dirs()]
    return [d / name for d in dirs for name in spec.filenames]


def _download(url: str, dest: Path, timeout: float) -> Path:
    def write(f):
        with urllib.request.urlopen(url, timeout=timeout) as response:
            while chunk := response.read(1 << 20):
                f.write(chunk)

    return atomic_write(dest, write)


def _where_to_put(spec: WeightsSpec) -> str:
    return (
        f"{spec.note}: put '{spec.filenames[0]}' in {cache_dir('weights')} or "
        f"{_torch_hub_checkpoints()}, or set {spec.env_var}=/path/to/file"
        + (f" (download: {spec.url})" if spec.url else "")
    )


def locate_weights(
    key: str,
    path: str | os.PathLike | None = None,
    *,
    untrained: bool = False,
    download: bool | None = None,
    timeout: float = 20.0,
) -> ResolvedWeights:
    """Find the weights file of network `key` (see SPECS) and checksum it.

    untrained: the caller knows the file is random (tests, smoke runs).
    download: try the library URL when nothing is found locally; default True unless
    ONESTEP_OFFLINE=1 or HF_HUB_OFFLINE=1 is set.
    """
    if key not in SPECS:
        raise KeyError(f"unknown feature network '{key}': known ones are {sorted(SPECS)}")
    spec = SPECS[key]
    found: tuple[Path, str] | None = None
    if path is not None:
        if not Path(path).is_file():
            raise WeightsNotFoundError(f"weights file '{path}' for {key} does not exist. {_where_to_put(spec)}")
        found = (Path(path), "argument")
    elif os.environ.get(spec.env_var):
        env_path = Path(os.environ[spec.env_var])
        if not env_path.is_file():
            raise WeightsNotFoundError(f"{spec.env_var}={env_path} does not exist. {_where_to_put(spec)}")
        found = (env_path, "env")
    else:
        hit = next((p for p in _candidates(spec) if p.is_file()), None)
        if hit is not None:
            found = (hit, "cache")
    if found is None:
        if download is None:
            offline = os.environ.get("ONESTEP_OFFLINE") == "1" or os.environ.get("HF_HUB_OFFLINE") == "1"
            download = not offline
        if download and spec.url:
            dest = cache_dir("weights") / spec.filenames[0]
            try:
                _download(spec.url, dest, timeout)
            except OSError as exc:  # URLError, timeouts, DNS failures are all OSError
                raise WeightsNotFoundError(
                    f"weights '{spec.filenames[0]}' for {key} not found locally and the download failed ({exc}). "
                    + _where_to_put(spec)
                ) from exc
            found = (dest, "download")
            sha = sha256_file(dest)
            if spec.released_sha256 and not is_released(spec, sha):
                dest.unlink(missing_ok=True)
                raise WeightsFormatError(f"downloaded {spec.url} but its sha256 {sha} is not the released one; removed it")
        else:
            raise WeightsNotFoundError(f"weights '{spec.filenames[0]}' for {key} not found. " + _where_to_put(spec))
    file, source = found
    sha = sha256_file(file)
    released = is_released(spec, sha)
    # A known checksum that does not match means these are not the released weights.
    flagged = untrained or (bool(spec.released_sha256) and not released)
    return ResolvedWeights(key=key, path=file, sha256=sha, source=source, released=released, untrained=flagged)


def load_state_dict(path: str | os.PathLike, expected: Mapping[str, torch.Size] | None = None) -> dict[str, torch.Tensor]:
    """Read a state dict without executing code from the file.

    Accepts safetensors, plain `torch.save` state dicts (optionally under 'state_dict' or
    'model'), and TorchScript archives such as OpenAI's CLIP release (their tensors are read;
    TorchScript is a restricted interpreter, no Python code from the file runs).
    With `expected` (key -> shape), missing/unexpected keys or wrong shapes are an error that
    names them.
    """
    path = Path(path)
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            sd = load_file(str(path))
        else:
            try:
                sd = torch.load(path, map_location="cpu", weights_only=True)
            except RuntimeError as exc:
                if "TorchScript" not in str(exc) and "constants.pkl" not in str(exc):
                    raise
                sd = torch.jit.load(str(path), map_location="cpu").state_dict()
    except Exception as exc:  # corrupt, truncated, pickled code, wrong format
        raise WeightsFormatError(
            f"cannot read weights file '{path}' as a state dict ({type(exc).__name__}: {exc}). "
            "It may be truncated or not a weights file: delete it and download/copy it again."
        ) from exc
    if isinstance(sd, torch.jit.ScriptModule):
        sd = sd.state_dict()
    if isinstance(sd, dict):
        for wrapper in ("state_dict", "model"):
            if wrapper in sd and isinstance(sd[wrapper], dict):
                sd = sd[wrapper]
    if not isinstance(sd, dict) or not all(isinstance(v, torch.Tensor) for v in sd.values()):
        raise WeightsFormatError(f"'{path}' does not hold a state dict of tensors (got {type(sd).__name__})")
    if expected is not None:
        check_state_dict(sd, expected, path)
    return dict(sd)


def check_state_dict(sd: Mapping[str, torch.Tensor], expected: Mapping[str, torch.Size], path="weights") -> None:
    missing = sorted(set(expected) - set(sd))
    unexpected = sorted(set(sd) - set(expected))
    wrong = sorted(k for k in set(sd) & set(expected) if tuple(sd[k].shape) != tuple(expected[k]))
    if missing or unexpected or wrong:
        detail = []
        if missing:
            detail.append(f"missing {len(missing)} keys (e.g. {missing[:3]})")
        if unexpected:
            detail.append(f"unexpected {len(unexpected)} keys (e.g. {unexpected[:3]})")
        if wrong:
            k = wrong[0]
            detail.append(f"{len(wrong)} wrong shapes (e.g. {k}: {tuple(sd[k].shape)} vs {tuple(expected[k])})")
        raise WeightsFormatError(f"'{path}' is not the expected network: " + "; ".join(detail))
