"""The naive reference path: PNG folders -> torch-fidelity (FID, IS, KID, PR) -> clean-fid (CLIP-FID).

This is what one would do without the harness, and what the harness is checked against:
write generated and reference images as PNGs, run `torch_fidelity.calculate_metrics` on the
folders (Inception for fid/isc/kid, a second call with the vgg16 extractor for prc, since
one weights path is shared by all extractors of a call), then clean-fid's `compute_fid` on
the same folders with an open-clip ViT-B/32 as clean-fid's CLIP-FID does. Each library
extracts its own features again: that duplicated work is what the one-pass harness saves.

Library defects handled here (see docs/shared notes): keyword arguments are validated
(torch-fidelity ignores unknown ones silently); its cache is off (keyed by name only, so
random-weight features could poison later runs); `save_cpu_ram=True` (no DataLoader
workers on small machines); `kid_subset_size` is clipped to the sample count (default 1000
fails with fewer samples); clean-fid's `sqrtm(..., disp=False)` is shimmed where scipy
dropped `disp` (1.18); conditional generators are wrapped to draw their own labels
(torch-fidelity's class path uses the removed `np.int`).
"""
from __future__ import annotations

import contextlib
import difflib
import inspect
import tempfile
import time
from pathlib import Path
from typing import Iterable

import numpy as np
import torch
from PIL import Image

from onestep.benchmarks.metrics import weights as weights_mod


def fidelity_kwargs(**kwargs) -> dict:
    """torch-fidelity keyword arguments, refusing unknown names (the library ignores them)."""
    from torch_fidelity.defaults import DEFAULTS

    for key in kwargs:
        if key not in DEFAULTS:
            near = difflib.get_close_matches(key, DEFAULTS, n=1)
            hint = f"; did you mean '{near[0]}'?" if near else ""
            raise TypeError(f"torch-fidelity has no argument '{key}'{hint}")
    return kwargs


def write_png_folder(images: torch.Tensor | Iterable[torch.Tensor], folder: str | Path) -> Path:
    """uint8 (N, C, H, W) images (or batches of them) -> folder/000000.png ... (sorted = order)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    batches = [images] if isinstance(images, torch.Tensor) else images
    i = 0
    for batch in batches:
        if batch.dtype != torch.uint8 or batch.ndim != 4:
            raise ValueError(f"expected uint8 (N, C, H, W) images, got {batch.dtype} {tuple(batch.shape)}")
        rgb = batch.expand(-1, 3, -1, -1) if batch.shape[1] == 1 else batch
        for img in rgb.permute(0, 2, 3, 1).cpu().numpy():
            Image.fromarray(img, "RGB").save(folder / f"{i:06d}.png")
            i += 1
    return folder


@contextlib.contextmanager
def cleanfid_sqrtm_compat():
    """clean-fid calls `sqrtm(A, disp=False)` and unpacks two values; scipy 1.18 removed `disp`."""
    import scipy.linalg
    from cleanfid import fid as cf

    if "disp" in inspect.signature(scipy.linalg.sqrtm).parameters:
        yield
        return
    original = cf.linalg.sqrtm

    class _Shim:
        def __getattr__(self, name):
            return getattr(scipy.linalg, name)

        @staticmethod
        def sqrtm(a, disp=True, **kw):
            result = original(a, **kw)
            return (result, 0.0) if disp is False else result

    cf.linalg = _Shim()
    try:
        yield
    finally:
        cf.linalg = scipy.linalg


class CleanFidCLIP:
    """clean-fid's CLIP_fx with the network from open-clip's own loader (the OpenAI `clip`
    package clean-fid imports cannot load offline): x/255, OpenAI mean/std, encode_image."""

    def __init__(self, weights_path, device="cpu"):
        import open_clip
        from torchvision import transforms

        from onestep.benchmarks.metrics.extractors.clip import OPENAI_MEAN, OPENAI_STD

        self.model = open_clip.create_model("ViT-B-32", pretrained=str(weights_path), force_quick_gelu=True)
        self.model.eval().to(device)
        self.norm = transforms.Normalize(OPENAI_MEAN, OPENAI_STD)

    @torch.no_grad()
    def __call__(self, img_t):
        return self.model.encode_image(self.norm(img_t / 255.0))


class LabelDrawingGenerator(torch.nn.Module):
    """A conditional generator as torch-fidelity sees an unconditional one (num_classes=0):
    it draws its own labels from a seeded generator, avoiding the library's `np.int` path.
    Output: uint8 images, as torch-fidelity's generator input expects."""

    def __init__(self, G, seed: int = 0):
        super().__init__()
        self.G = G
        self.rng = torch.Generator().manual_seed(seed)

    def forward(self, z):
        from onestep.benchmarks.sampling import quantize

        labels = None
        if getattr(self.G, "label_dim", 0):
            idx = torch.randint(self.G.label_dim, (z.shape[0],), generator=self.rng)
            labels = torch.eye(self.G.label_dim, device=z.device)[idx.to(z.device)]
        shape = (z.shape[0], self.G.img_channels, self.G.img_resolution, self.G.img_resolution)
        return quantize(self.G(z.reshape(shape), labels))


def fidelity_generator(G, seed: int = 0):
    """G as a torch-fidelity generator input (z_size = C*H*W normal latents, num_classes=0)."""
    from torch_fidelity import GenerativeModelModuleWrapper

    z_size = G.img_channels * G.img_resolution ** 2
    return GenerativeModelModuleWrapper(LabelDrawingGenerator(G, seed), z_size, "normal", 0, make_eval=True, cuda=False)


def naive_metrics(
    generated: torch.Tensor | Iterable[torch.Tensor],
    reference: torch.Tensor | Iterable[torch.Tensor],
    *,
    inception_weights,
    vgg16_weights,
    clip_weights,
    batch_size: int = 64,
    device: str = "cpu",
    workdir: str | Path | None = None,
    verbose: bool = False,
) -> dict:
    """FID, IS, KID, precision/recall (torch-fidelity) and CLIP-FID (clean-fid) on PNG folders.

    Returns torch-fidelity's keys plus 'clip_fid', 'untrained' and 'seconds' per stage.
    """
    import torch_fidelity
    from cleanfid import fid as cleanfid

    from onestep.benchmarks.metrics.extractors.clip import clean_clip_resize

    resolved = {
        "inception": weights_mod.locate_weights("inception-v3-compat", inception_weights),
        "vgg16": weights_mod.locate_weights("vgg16", vgg16_weights),
        "clip": weights_mod.locate_weights("clip-vit-b-32", clip_weights),
    }
    seconds = {}
    with tempfile.TemporaryDirectory(dir=workdir) as tmp:
        t = time.perf_counter()
        gen_dir = write_png_folder(generated, Path(tmp) / "generated")
        ref_dir = write_png_folder(reference, Path(tmp) / "reference")
        n = min(len(list(gen_dir.iterdir())), len(list(ref_dir.iterdir())))
        seconds["write_png"] = time.perf_counter() - t
        common = dict(input1=str(gen_dir), input2=str(ref_dir), cuda=device != "cpu", batch_size=batch_size,
                      cache=False, save_cpu_ram=True, verbose=verbose, samples_find_deep=False)
        t = time.perf_counter()
        out = dict(torch_fidelity.calculate_metrics(**fidelity_kwargs(
            **common, fid=True, isc=True, kid=True, kid_subset_size=min(1000, n),
            feature_extractor="inception-v3-compat",
            feature_extractor_weights_path=str(resolved["inception"].path))))
        seconds["torch_fidelity_inception"] = time.perf_counter() - t
        t = time.perf_counter()
        out.update(torch_fidelity.calculate_metrics(**fidelity_kwargs(
            **common, prc=True, feature_extractor="vgg16",
            feature_extractor_weights_path=str(resolved["vgg16"].path))))
        seconds["torch_fidelity_vgg16"] = time.perf_counter() - t
        t = time.perf_counter()
        with cleanfid_sqrtm_compat():
            out["clip_fid"] = float(cleanfid.compute_fid(
                str(gen_dir), str(ref_dir), mode="clean", custom_feat_extractor=CleanFidCLIP(resolved["clip"].path, device),
                custom_fn_resize=clean_clip_resize, num_workers=0, batch_size=batch_size,
                device=torch.device(device), verbose=verbose))
        seconds["clean_fid_clip"] = time.perf_counter() - t
    out["untrained"] = any(r.untrained for r in resolved.values())
    out["seconds"] = seconds
    return out
