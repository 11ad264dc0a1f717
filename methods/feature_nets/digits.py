"""The digits feature network: a small CNN classifier of scikit-learn's digits.

It plays the role Inception plays for CIFAR-10 on the embedded default: FD-digits / IS-digits /
KID-digits / precision-recall-digits are computed in its 128-d penultimate features (`embed`)
and its logits. The GDD plugin also uses it, frozen, as the feature network of a Projected
discriminator (`feature_maps`). It is trained by the suite (deterministic seed, ~10-30 s of
CPU) on the digits *train* split only, so held-out test digits measure real-data quality, and
cached as one safetensors file; the sha256 of its tensors (`weights_checksum`) identifies it
and the file's metadata records the recipe and the test accuracy.
"""
from __future__ import annotations

import hashlib
import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from onestep.methods.core.atomic import atomic_write_bytes
from onestep.methods.core.paths import cache_dir

FORMAT_VERSION = "digits-cnn-v1"


@dataclass(frozen=True)
class DigitsNetRecipe:
    """Everything that determines the trained weights; its hash is the cache key."""

    input_resolution: int = 16  # every input is resized to this (8x8 digits are upsampled)
    widths: tuple[int, int, int] = (32, 64, 128)  # channels at 16x16, 8x8, 4x4; 128 = embed dim
    # 16x16 digits are the bilinear upsampling of 8x8 that `prepare` also applies, so 8 covers 16
    train_resolutions: tuple[int, ...] = (8, 32)
    epochs: int = 12
    batch_size: int = 128
    lr: float = 4e-3
    weight_decay: float = 1e-4
    max_shift: int = 1  # random translation (pixels at 16x16): robustness to small misplacements
    seed: int = 0

    def key(self) -> str:
        text = json.dumps({"format": FORMAT_VERSION, **asdict(self)}, sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:16]


class DigitsFeatureNet(nn.Module):
    """Float images in [-1, 1], (B, 1 or 3, H, W), any H=W -> logits / embeddings / maps."""

    def __init__(self, input_resolution: int = 16, widths=(32, 64, 128), num_classes: int = 10):
        super().__init__()
        self.input_resolution = int(input_resolution)
        c1, c2, c3 = widths
        self.stage1 = nn.Sequential(nn.Conv2d(1, c1, 3, padding=1), nn.SiLU())  # one conv at full size: CPU budget
        self.stage2 = nn.Sequential(nn.Conv2d(c1, c2, 3, padding=1), nn.SiLU(), nn.Conv2d(c2, c2, 3, padding=1), nn.SiLU())
        self.stage3 = nn.Sequential(nn.Conv2d(c2, c3, 3, padding=1), nn.SiLU(), nn.Conv2d(c3, c3, 3, padding=1), nn.SiLU())
        self.head = nn.Linear(c3, num_classes)
        self.embed_dim = c3
        self.num_classes = num_classes

    def prepare(self, x: torch.Tensor) -> torch.Tensor:
        """Average colour channels and resize to input_resolution (antialiased when shrinking)."""
        if x.ndim != 4 or x.shape[1] not in (1, 3):
            raise ValueError(f"digits feature net expects (B, 1 or 3, H, W) images in [-1, 1], got {tuple(x.shape)}")
        if not x.is_floating_point():
            raise TypeError(f"digits feature net expects float images in [-1, 1], got {x.dtype}; "
                            "convert uint8 with x / 127.5 - 1")
        x = x.to(self.head.weight.dtype)
        if x.shape[1] == 3:
            x = x.mean(dim=1, keepdim=True)
        r = self.input_resolution
        if x.shape[-2:] != (r, r):
            x = F.interpolate(x, size=(r, r), mode="bilinear", align_corners=False, antialias=x.shape[-1] > r)
        return x

    def feature_maps(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Multi-scale maps (B, 32, 16, 16), (B, 64, 8, 8), (B, 128, 4, 4) for a projected discriminator."""
        h1 = self.stage1(self.prepare(x))
        h2 = self.stage2(F.avg_pool2d(h1, 2))
        h3 = self.stage3(F.avg_pool2d(h2, 2))
        return [h1, h2, h3]

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 128) penultimate features: the space of FD-digits, KID-digits and PR-digits."""
        return self.feature_maps(x)[-1].mean(dim=(2, 3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.embed(x))

    def embed_and_logits(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        e = self.embed(x)
        return e, self.head(e)


def _training_data(recipe: DigitsNetRecipe, split: str) -> tuple[torch.Tensor, torch.Tensor]:
    """Digits of `split` at every training resolution, resized to the net input, in [-1, 1]."""
    from onestep.benchmarks.datasets import load_digits, to_model_range  # data lives in benchmarks

    xs, ys = [], []
    probe = DigitsFeatureNet(recipe.input_resolution, recipe.widths)
    for res in recipe.train_resolutions:
        ds = load_digits(resolution=res, channels=1, split=split)
        xs.append(probe.prepare(to_model_range(ds.images)))
        ys.append(ds.labels)
    return torch.cat(xs), torch.cat(ys)


def _random_shift(x: torch.Tensor, max_shift: int, gen: torch.Generator) -> torch.Tensor:
    if max_shift <= 0:
        return x
    pad = F.pad(x, [max_shift] * 4, value=-1.0)  # background is -1 (black)
    r = x.shape[-1]
    dx, dy = torch.randint(0, 2 * max_shift + 1, (2,), generator=gen).tolist()
    return pad[..., dy : dy + r, dx : dx + r]


@torch.no_grad()
def _accuracy(net: DigitsFeatureNet, x: torch.Tensor, y: torch.Tensor) -> float:
    net.eval()
    return float((net(x).argmax(1) == y).float().mean())


def train_digits_feature_net(recipe: DigitsNetRecipe = DigitsNetRecipe(), verbose: bool = True) -> tuple[DigitsFeatureNet, dict]:
    """Train from scratch, deterministically; returns the net and its metadata (test accuracy)."""
    torch.manual_seed(recipe.seed)
    gen = torch.Generator().manual_seed(recipe.seed)
    x_train, y_train = _training_data(recipe, "train")
    x_test, y_test = _training_data(recipe, "test")
    net = DigitsFeatureNet(recipe.input_resolution, recipe.widths)
    opt = torch.optim.AdamW(net.parameters(), lr=recipe.lr, weight_decay=recipe.weight_decay)
    steps_per_epoch = (len(x_train) + recipe.batch_size - 1) // recipe.batch_size
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=recipe.lr, total_steps=recipe.epochs * steps_per_epoch)
    t0 = time.time()
    for epoch in range(recipe.epochs):
        net.train()
        order = torch.randperm(len(x_train), generator=gen)
        for i in range(0, len(order), recipe.batch_size):
            idx = order[i : i + recipe.batch_size]
            xb = _random_shift(x_train[idx], recipe.max_shift, gen)
            loss = F.cross_entropy(net(xb), y_train[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
        if verbose and (epoch + 1) % 4 == 0:
            print(f"digits feature net: epoch {epoch + 1}/{recipe.epochs} loss {loss.item():.4f} "
                  f"({time.time() - t0:.0f}s)", flush=True)  # one line per 4 epochs: log-friendly
    meta = {
        "format": FORMAT_VERSION,
        "recipe": json.dumps(asdict(recipe), sort_keys=True),
        "train_accuracy": f"{_accuracy(net, x_train, y_train):.6f}",
        "test_accuracy": f"{_accuracy(net, x_test, y_test):.6f}",
        "test_images": str(len(x_test)),
        "train_seconds": f"{time.time() - t0:.1f}",
        "torch_version": torch.__version__,
    }
    net.eval().requires_grad_(False)
    return net, meta


def weights_checksum(state: dict[str, torch.Tensor]) -> str:
    """sha256 over the tensors only (name, dtype, shape, bytes in name order): the net's identity.

    The file's metadata (training time, versions) is left out, so retraining to the same weights
    gives the same checksum, and any change of a weight gives another.
    """
    h = hashlib.sha256()
    for name in sorted(state):
        t = state[name].detach().cpu().contiguous()
        h.update(f"{name}|{t.dtype}|{tuple(t.shape)}|".encode())
        h.update(t.numpy().tobytes())
    return h.hexdigest()


class DigitsNetFileError(ValueError):
    """A digits feature-net file that is not what the suite wrote."""


def load_digits_feature_net(path: str | Path, device: torch.device | str = "cpu") -> DigitsFeatureNet:
    """Load a cached/copied digits net (safetensors: tensors only, never code); frozen, eval mode."""
    from safetensors import safe_open
    from safetensors.torch import load as st_load

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"digits feature net '{path}' does not exist")
    data = path.read_bytes()
    try:
        with safe_open(str(path), "pt") as f:
            meta = f.metadata() or {}
        state = st_load(data)
    except Exception as exc:  # safetensors raises its own error types for truncated/corrupt headers
        raise DigitsNetFileError(f"'{path}' is not a readable safetensors file ({exc}); delete it and it is retrained") from exc
    if meta.get("format") != FORMAT_VERSION:
        raise DigitsNetFileError(f"'{path}' has format '{meta.get('format')}', expected '{FORMAT_VERSION}'")
    recipe = DigitsNetRecipe(**{k: tuple(v) if isinstance(v, list) else v for k, v in json.loads(meta["recipe"]).items()})
    with torch.device("cpu"):  # the loaded values live on the CPU first, whatever device context is active
        net = DigitsFeatureNet(recipe.input_resolution, recipe.widths)
    try:
        net.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise DigitsNetFileError(f"'{path}' does not hold the digits feature net's tensors: {exc}") from exc
    net.eval().requires_grad_(False)
    net.weights_sha256 = weights_checksum(state)
    net.metadata = dict(meta)
    net.path = path
    net.source = str(path)  # where it came from, for records (e.g. the projected discriminator)
    return net.to(device)


def digits_feature_net_path(recipe: DigitsNetRecipe = DigitsNetRecipe()) -> Path:
    return cache_dir("feature_nets", f"digits-{recipe.key()}") / "digits_cnn.safetensors"


def get_digits_feature_net(device: torch.device | str = "cpu", recipe: DigitsNetRecipe = DigitsNetRecipe(),
                           verbose: bool = True) -> DigitsFeatureNet:
    """The cached digits net (trained on first use); attributes weights_sha256, metadata, path."""
    from safetensors.torch import save as st_save

    path = digits_feature_net_path(recipe)
    if not path.exists():
        # Training reseeds torch's global RNG; fork it so a caller's random stream (a run that
        # builds its discriminator after this) is the same whether or not the net was cached.
        # Trained on the CPU even inside another device context (a dry run builds under meta).
        with torch.random.fork_rng(devices=[]), torch.device("cpu"):
            net, meta = train_digits_feature_net(recipe, verbose=verbose)
        state = {k: v.contiguous() for k, v in net.state_dict().items()}
        atomic_write_bytes(path, st_save(state, metadata=meta))  # concurrent trainers: last rename wins whole
        if verbose:
            print(f"digits feature net: test accuracy {float(meta['test_accuracy']):.2%}, cached at {path}")
    return load_digits_feature_net(path, device)
