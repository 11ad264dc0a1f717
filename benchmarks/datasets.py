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

from .progress import Progress


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


# ---------------------------------------------------------------------------------------------
# Image files: EDM's dataset format (zip or folder of images + optional dataset.json), plain
# image folders, and .npz arrays (EDM/ADM reference batches), all into ArrayImageDataset.
# ---------------------------------------------------------------------------------------------

DATASETS_ENV = "ONESTEP_DATASETS"  # a directory of named datasets, e.g. cifar10-32x32.zip
_LABELS_FILE = "dataset.json"  # EDM's dataset_tool.py: {"labels": [[relative/path.png, int], ...]}
_PROGRESS_MIN_FILES = 1000  # show a progress line for folders at least this large
_GRAY_MODES = {"1", "L", "LA", "La"}
_ALPHA_MODES = {"RGBA", "RGBa", "LA", "La", "PA"}
_HIGH_BIT_MODES = {"I", "I;16", "I;16B", "I;16L", "I;16N", "F"}


class DatasetError(ValueError):
    """A dataset cannot be read as given; the message names the file, the problem and the fix."""


def _image_extensions() -> set[str]:
    import PIL.Image

    PIL.Image.init()
    return {ext.lower() for ext in PIL.Image.EXTENSION}


class _ImageSource:
    """The files of a directory or zip archive: sorted relative posix names, bytes by name."""

    def __init__(self, path):
        import zipfile
        from pathlib import Path

        self.path = Path(path)
        self._zip = None
        if self.path.is_dir():
            names = [p.relative_to(self.path).as_posix() for p in self.path.rglob("*") if p.is_file()]
        elif self.path.suffix.lower() == ".zip":
            try:
                self._zip = zipfile.ZipFile(self.path)
            except (zipfile.BadZipFile, OSError) as e:
                raise DatasetError(f"'{self.path}' is not a readable zip archive ({e})") from e
            names = [n for n in self._zip.namelist() if not n.endswith("/")]
        else:
            raise DatasetError(f"'{self.path}' is neither a directory nor a .zip/.npz file")
        self.all_names = set(names)
        exts = _image_extensions()
        self.image_names = sorted(n for n in names if _suffix(n) in exts and not _hidden(n))  # EDM: sorted names

    def read(self, name: str) -> bytes:
        if self._zip is not None:
            return self._zip.read(name)
        return (self.path / name).read_bytes()

    def where(self, name: str) -> str:
        return f"{self.path}:{name}" if self._zip is not None else str(self.path / name)

    def close(self):
        if self._zip is not None:
            self._zip.close()


def _suffix(name: str) -> str:
    dot = name.rfind(".")
    return name[dot:].lower() if dot > name.rfind("/") else ""


def _hidden(name: str) -> bool:
    return any(part.startswith(".") or part == "__MACOSX" for part in name.split("/"))


def _decode_image(data: bytes, where: str, channels: int | None):
    """Decode to (H, W, C) uint8 and report what conversion it needed."""
    import io

    import PIL.Image

    try:
        with PIL.Image.open(io.BytesIO(data)) as img:
            img.load()
            mode = img.mode
            if mode in _HIGH_BIT_MODES:
                raise DatasetError(f"'{where}' is a {mode} image (16/32 bits per pixel); convert it to 8-bit first")
            had_alpha = mode in _ALPHA_MODES or (mode == "P" and "transparency" in img.info)
            gray = mode in _GRAY_MODES
            if channels == 1 or (channels is None and gray):
                out, conversion = img.convert("L"), (None if gray else "rgb_to_gray")
            else:
                out, conversion = img.convert("RGB"), ("gray_to_rgb" if gray else None)
            array = np.asarray(out, dtype=np.uint8)
    except DatasetError:
        raise
    except Exception as e:  # PIL raises several types for damaged files
        raise DatasetError(f"cannot read image '{where}' ({type(e).__name__}: {e}); remove or replace the file") from e
    if array.ndim == 2:
        array = array[:, :, None]
    return array, conversion, had_alpha


def _read_labels(source: _ImageSource, names: list[str]) -> np.ndarray | None:
    import json

    if _LABELS_FILE not in source.all_names:
        return None
    where = source.where(_LABELS_FILE)
    try:
        labels = json.loads(source.read(_LABELS_FILE))["labels"]
    except (ValueError, KeyError, TypeError) as e:
        raise DatasetError(f"'{where}' is not EDM's label file {{\"labels\": [[file, label], ...]}} ({e})") from e
    if labels is None:  # EDM writes "labels": null for unlabelled datasets
        return None
    try:
        table = {str(fname).replace("\\", "/"): label for fname, label in labels}
    except (TypeError, ValueError) as e:
        raise DatasetError(f"'{where}': labels must be [file, label] pairs ({e})") from e
    missing = [n for n in names if n not in table]
    if missing:
        raise DatasetError(f"'{where}' has no label for {len(missing)} of {len(names)} images (e.g. "
                           f"{', '.join(missing[:3])}); add them, or pass use_labels=False")
    values = [table[n] for n in names]
    bad = [(n, v) for n, v in zip(names, values) if isinstance(v, bool) or not isinstance(v, int) or v < 0]
    if bad:
        raise DatasetError(f"'{where}': labels must be non-negative class ids, got {bad[0][1]!r} for '{bad[0][0]}'")
    return np.asarray(values, dtype=np.int64)


def _select(n: int, max_images: int | None) -> np.ndarray:
    """All indices, or EDM's `max_size` subset: shuffled with seed 0, first max_images, sorted."""
    index = np.arange(n)
    if max_images is not None and n > max_images:
        np.random.RandomState(0).shuffle(index)
        index = np.sort(index[:max_images])
    return index


def _warn_conversions(counts: dict[str, int], what: str) -> None:
    import warnings

    notes = {"gray_to_rgb": "grayscale images converted to RGB", "rgb_to_gray": "color images converted to grayscale",
             "alpha": "images had an alpha channel, which was dropped"}
    for key, text in notes.items():
        if counts.get(key):
            warnings.warn(f"{what}: {counts[key]} {text}", stacklevel=3)


def _load_image_files(path, resolution, channels, max_images, use_labels, progress) -> tuple[np.ndarray, np.ndarray | None, str]:
    source = _ImageSource(path)
    try:
        names = source.image_names
        if not names:
            raise DatasetError(f"'{path}' contains no image files (extensions: {', '.join(sorted(_image_extensions())[:8])}, ...)")
        labels = _read_labels(source, names) if use_labels else None
        index = _select(len(names), max_images)
        names = [names[i] for i in index]
        labels = None if labels is None else labels[index]
        # channels=None: decode natively into a 3-channel buffer; if every image turns out to be
        # grayscale keep one channel, else the grayscale ones (broadcast into RGB) count as converted.
        buffer_channels = channels or 3
        counts = {"gray_to_rgb": 0, "rgb_to_gray": 0, "alpha": 0}
        n_gray = 0
        images = None
        first = None
        bar = Progress(f"loading {path}", len(names), enabled=progress if progress is not None else len(names) >= _PROGRESS_MIN_FILES)
        for i, name in enumerate(names):
            array, conversion, had_alpha = _decode_image(source.read(name), source.where(name), channels)
            h, w = array.shape[:2]
            if h != w:
                raise DatasetError(f"'{source.where(name)}' is {w}x{h}, not square; crop or resize the images "
                                   "(e.g. EDM's dataset_tool.py --transform=center-crop --resolution=RxR)")
            if first is None:
                first = (name, h)
                if resolution is not None and h != resolution:
                    raise DatasetError(f"'{source.where(name)}' is {h}x{h} but resolution={resolution} was requested; "
                                       "resize the dataset or ask for its native resolution")
                images = np.empty((len(names), buffer_channels, h, h), dtype=np.uint8)
            elif h != first[1]:
                raise DatasetError(f"images of different sizes in '{path}': '{first[0]}' is {first[1]}x{first[1]} but "
                                   f"'{name}' is {w}x{h}; resize them to one resolution")
            images[i] = array.transpose(2, 0, 1)  # (1, H, W) broadcasts to 3 channels
            n_gray += int(array.shape[2] == 1)
            if conversion:
                counts[conversion] += 1
            counts["alpha"] += int(had_alpha)
            bar.set(i + 1)
        if channels is None:
            if n_gray == len(names):
                images, channels = np.ascontiguousarray(images[:, :1]), 1
            else:
                counts["gray_to_rgb"], channels = n_gray, 3
        _warn_conversions(counts, str(path))
        return images, labels, channels
    finally:
        source.close()


def _load_npz(path, resolution, channels, max_images) -> tuple[np.ndarray, np.ndarray | None, int]:
    import zipfile

    try:
        with np.load(path, allow_pickle=False) as data:
            key = next((k for k in ("images", "arr_0") if k in data.files), None)
            if key is None:
                raise DatasetError(f"'{path}' has no image array: expected key 'arr_0' or 'images', found {data.files}")
            x = data[key]
            labels = data["labels"] if "labels" in data.files else None
    except (zipfile.BadZipFile, OSError, ValueError, EOFError) as e:
        if isinstance(e, DatasetError):
            raise
        raise DatasetError(f"'{path}' is not a readable .npz file ({e})") from e
    if x.dtype != np.uint8:
        raise DatasetError(f"'{path}': images must be uint8 in 0..255, got {x.dtype}; convert floats in [-1, 1] with "
                           "(x * 127.5 + 128).clip(0, 255).astype(np.uint8)")
    if x.ndim == 3:
        x = x[:, None]
    elif x.ndim == 4 and x.shape[1] == x.shape[2] and x.shape[3] in (1, 3, 4):
        x = x.transpose(0, 3, 1, 2)  # NHWC, as EDM/ADM reference batches
    elif not (x.ndim == 4 and x.shape[1] in (1, 3, 4)):
        raise DatasetError(f"'{path}': cannot read images of shape {x.shape}; expected (N, H, W, C) or (N, C, H, W) "
                           "with C in 1, 3, 4, or (N, H, W)")
    if x.shape[2] != x.shape[3]:
        raise DatasetError(f"'{path}': images are {x.shape[3]}x{x.shape[2]}, not square; crop or resize them")
    if resolution is not None and x.shape[2] != resolution:
        raise DatasetError(f"'{path}': images are {x.shape[2]}x{x.shape[2]} but resolution={resolution} was requested")
    if labels is not None and (labels.ndim != 1 or len(labels) != len(x) or labels.dtype.kind not in "iu"):
        raise DatasetError(f"'{path}': 'labels' must be {len(x)} integer class ids, got {labels.dtype} {labels.shape}")
    index = _select(len(x), max_images)
    x = x[index]
    labels = None if labels is None else labels[index].astype(np.int64)
    counts = {"alpha": len(x) if x.shape[1] == 4 else 0}
    x = x[:, :3] if x.shape[1] == 4 else x
    channels = channels or x.shape[1]
    if x.shape[1] == 1 and channels == 3:
        x, counts["gray_to_rgb"] = np.repeat(x, 3, axis=1), len(x)
    elif x.shape[1] == 3 and channels == 1:  # ITU-R 601-2 luma in PIL's fixed point (convert("L"))
        r, g, b = (x[:, i].astype(np.uint32) for i in range(3))
        luma = (r * 19595 + g * 38470 + b * 7471 + 0x8000) >> 16
        x, counts["rgb_to_gray"] = luma[:, None].astype(np.uint8), len(x)
    _warn_conversions(counts, str(path))
    return np.ascontiguousarray(x), labels, channels


def load_images(path, resolution: int | None = None, channels: int | None = None, max_images: int | None = None,
                use_labels: bool = True, label_dim: int | None = None, name: str | None = None,
                progress: bool | None = None) -> ArrayImageDataset:
    """Images from an EDM dataset zip/folder (labels from dataset.json), a plain image folder,
    or an .npz of uint8 images, as an ArrayImageDataset.

    channels: 1 or 3; None keeps the data's own (RGB if any image has color). Other channel
    layouts are converted with a warning that says how many images. max_images: EDM's
    `max_size` subset (shuffle with seed 0, keep the first max_images, in file order).
    label_dim: default max label + 1, as EDM. progress: None = only for >= 1000 files.
    """
    from pathlib import Path

    path = Path(path)
    if channels not in (None, 1, 3):
        raise ValueError(f"channels must be 1, 3 or None (keep the data's), got {channels}")
    if max_images is not None and max_images < 1:
        raise ValueError(f"max_images must be >= 1, got {max_images}")
    if not path.exists():
        raise DatasetError(f"dataset '{path}' does not exist")
    if path.suffix.lower() == ".npz":
        images, labels, channels = _load_npz(path, resolution, channels, max_images)
        labels = labels if use_labels else None
    else:
        images, labels, channels = _load_image_files(path, resolution, channels, max_images, use_labels, progress)
    if labels is not None:
        needed = int(labels.max()) + 1 if len(labels) else 0
        if label_dim is not None and label_dim < needed:
            raise DatasetError(f"'{path}': label {needed - 1} does not fit label_dim={label_dim}")
        label_dim = needed if label_dim is None else label_dim
    else:
        label_dim = 0
    stem = path.name[: -len(path.suffix)] if path.suffix else path.name
    return ArrayImageDataset(images, labels, label_dim, name or stem)


_DIGITS_SPEC = r"digits(?:-(\d+)(?:x(\d+))?)?(?:-c(\d+))?(?:-(all|train|test))?"


def load_dataset(spec, **kwargs) -> ArrayImageDataset:
    """Resolve a dataset by name or path.

    - `digits`, `digits-16`, `digits-16x16`, `digits-16-c3`, `digits-8x8-c1-train` (the names
      load_digits gives its datasets): scikit-learn's digits; kwargs go to load_digits.
    - a path to a zip, a folder or an .npz: load_images(path, **kwargs);
    - a name found in $ONESTEP_DATASETS (NAME, NAME.zip or NAME.npz), e.g. cifar10-32x32.
    """
    import os
    import re
    from pathlib import Path

    from onestep.methods.core.config import suggest

    text = os.fspath(spec)
    match = re.fullmatch(_DIGITS_SPEC, text)
    if match:
        res, res2, ch, split = match.groups()
        if res2 is not None and res2 != res:
            raise ValueError(f"dataset '{text}': digits images are square; use digits-{res}")
        args = dict(resolution=int(res or 8), channels=int(ch or 1), split=split or "all")
        for key in args:
            if key in kwargs and match.group({"resolution": 1, "channels": 3, "split": 4}[key]) is not None:
                raise ValueError(f"dataset '{text}': {key} is given both in the name and as an argument")
        return load_digits(**{**args, **kwargs})
    if Path(text).exists():
        return load_images(text, **kwargs)
    roots = [Path(d) for d in os.environ.get(DATASETS_ENV, "").split(os.pathsep) if d]
    for root in roots:
        for candidate in (root / text, root / f"{text}.zip", root / f"{text}.npz"):
            if candidate.exists():
                return load_images(candidate, **kwargs)
    known = ["digits", "digits-16", "digits-32"] + sorted(
        p.name.rsplit(".", 1)[0] if p.suffix in (".zip", ".npz") else p.name for r in roots if r.is_dir() for p in r.iterdir())
    where = f" or in ${DATASETS_ENV} ({', '.join(map(str, roots))})" if roots else f" (set ${DATASETS_ENV} to a directory of datasets)"
    raise DatasetError(f"unknown dataset '{text}'{suggest(text, known)}: not a digits name (digits-RES[-cC][-split]), "
                       f"not an existing path, and not found{where}")


def find_named_dataset(name: str, resolution: int | None = None):
    """A suite dataset's files under $ONESTEP_DATASETS: NAME or NAME-RESxRES (EDM's naming, e.g.
    cifar10-32x32.zip), as a folder, .zip or .npz; None when not found (or the variable unset)."""
    import os
    from pathlib import Path

    stems = [name] + ([f"{name}-{resolution}x{resolution}"] if resolution else [])
    for root in (Path(d).expanduser() for d in os.environ.get(DATASETS_ENV, "").split(os.pathsep) if d):
        for stem in stems:
            for candidate in (root / stem, root / f"{stem}.zip", root / f"{stem}.npz"):
                if candidate.exists():
                    return candidate
    return None


def dataset_path_problem(name: str, path: str | None, resolution: int | None = None) -> str | None:
    """Why a suite's (non-embedded) dataset cannot be found, naming every way to give it; None if fine."""
    from pathlib import Path

    if path:
        return None if Path(path).expanduser().exists() else (
            f"dataset {name}: {path} does not exist (pass --dataset PATH, or fix dataset.path)")
    if find_named_dataset(name, resolution) is not None:
        return None
    stems = f"{name}" + (f" or {name}-{resolution}x{resolution}" if resolution else "")
    return (f"dataset {name}: no path given; pass --dataset PATH (image folder, zip or .npz), set dataset.path in the "
            f"suite, or put {stems} (folder, .zip or .npz) in a directory named by ${DATASETS_ENV}")
