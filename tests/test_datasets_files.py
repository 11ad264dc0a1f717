"""Image datasets from files: EDM zips/folders with dataset.json, plain folders, .npz arrays."""
from __future__ import annotations

import io
import json
import warnings
import zipfile

import numpy as np
import PIL.Image
import pytest

from onestep.benchmarks.datasets import DatasetError, load_dataset, load_digits, load_images


def rgb_images(n, res=8, seed=0):
    return np.random.default_rng(seed).integers(0, 256, size=(n, res, res, 3), dtype=np.uint8)


def png_bytes(array: np.ndarray, mode: str | None = None) -> bytes:
    buf = io.BytesIO()
    PIL.Image.fromarray(array.squeeze(-1) if array.ndim == 3 and array.shape[-1] == 1 else array, mode).save(buf, format="PNG")
    return buf.getvalue()


def write_folder(root, files: dict[str, bytes]):
    for name, data in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    return root


def edm_files(images: np.ndarray, labels=None) -> dict[str, bytes]:
    """EDM dataset_tool.py layout: 00000/img00000000.png, ... plus dataset.json."""
    files = {f"{i // 1000:05d}/img{i:08d}.png": png_bytes(x) for i, x in enumerate(images)}
    if labels is not None:
        files["dataset.json"] = json.dumps({"labels": [[n, int(l)] for n, l in zip(files, labels)]}).encode()
    return files


def write_zip(path, files: dict[str, bytes]):
    with zipfile.ZipFile(path, "w") as z:
        for name, data in files.items():
            z.writestr(name, data)
    return path


def test_edm_zip_with_labels(tmp_path):
    images, labels = rgb_images(12), np.arange(12) % 4
    files = edm_files(images, labels)
    files = dict(reversed(list(files.items())))  # archive order must not matter: EDM sorts names
    ds = load_images(write_zip(tmp_path / "cifar-mini.zip", files))
    assert ds.name == "cifar-mini" and len(ds) == 12 and ds.channels == 3 and ds.resolution == 8
    assert np.array_equal(ds.images.numpy(), images.transpose(0, 3, 1, 2))
    assert ds.labels.tolist() == labels.tolist() and ds.label_dim == 4


def test_folder_equals_zip_and_use_labels_false(tmp_path):
    images, labels = rgb_images(5, seed=1), np.array([0, 1, 2, 1, 0])
    files = edm_files(images, labels)
    a = load_images(write_folder(tmp_path / "folder", files))
    b = load_images(write_zip(tmp_path / "ds.zip", files))
    assert a.content_hash() == b.content_hash()
    c = load_images(tmp_path / "folder", use_labels=False)
    assert c.labels is None and c.label_dim == 0
    assert load_images(tmp_path / "folder", label_dim=10).label_dim == 10
    with pytest.raises(DatasetError, match="does not fit label_dim=2"):
        load_images(tmp_path / "folder", label_dim=2)


def test_plain_folder_without_labels_ignores_other_files(tmp_path):
    images = rgb_images(3)
    files = {f"cat_{i}.png": png_bytes(x) for i, x in enumerate(images)}
    files["README.txt"] = b"not an image"
    files[".hidden/thumb.png"] = b"junk"
    ds = load_images(write_folder(tmp_path / "pets", files))
    assert len(ds) == 3 and ds.labels is None and ds.label_dim == 0


def test_missing_labels_are_named(tmp_path):
    files = edm_files(rgb_images(4), [0, 1, 2, 3])
    table = json.loads(files["dataset.json"])
    table["labels"] = table["labels"][:2]
    files["dataset.json"] = json.dumps(table).encode()
    with pytest.raises(DatasetError, match=r"no label for 2 of 4 images \(e\.g\. 00000/img00000002\.png"):
        load_images(write_zip(tmp_path / "ds.zip", files))


def test_mixed_sizes_name_both_files(tmp_path):
    files = {"a.png": png_bytes(rgb_images(1, res=8)[0]), "b.png": png_bytes(rgb_images(1, res=16)[0])}
    with pytest.raises(DatasetError, match=r"'a\.png' is 8x8 but 'b\.png' is 16x16"):
        load_images(write_folder(tmp_path / "mixed", files))


def test_non_square_and_resolution_mismatch(tmp_path):
    wide = np.zeros((8, 12, 3), dtype=np.uint8)
    with pytest.raises(DatasetError, match=r"wide\.png' is 12x8, not square"):
        load_images(write_folder(tmp_path / "wide", {"wide.png": png_bytes(wide)}))
    write_folder(tmp_path / "ok", {"a.png": png_bytes(rgb_images(1)[0])})
    with pytest.raises(DatasetError, match="resolution=32 was requested"):
        load_images(tmp_path / "ok", resolution=32)


def test_unreadable_image_is_named(tmp_path):
    files = {"good.png": png_bytes(rgb_images(1)[0]), "broken.png": b"\x89PNG not really"}
    with pytest.raises(DatasetError, match=r"cannot read image '.*broken\.png'"):
        load_images(write_zip(tmp_path / "ds.zip", files))
    (tmp_path / "bad.zip").write_bytes(b"PK\x03\x04 nope")
    with pytest.raises(DatasetError, match="not a readable zip"):
        load_images(tmp_path / "bad.zip")


def test_grayscale_and_rgba_become_rgb_with_a_notice(tmp_path):
    rgb = rgb_images(2)
    gray = np.random.default_rng(3).integers(0, 256, size=(2, 8, 8), dtype=np.uint8)
    rgba = np.concatenate([rgb_images(1, seed=4), np.full((1, 8, 8, 1), 7, np.uint8)], axis=-1)
    files = {"0.png": png_bytes(rgb[0]), "1.png": png_bytes(gray[0], "L"), "2.png": png_bytes(gray[1], "L"),
             "3.png": png_bytes(rgba[0], "RGBA"), "4.png": png_bytes(rgb[1])}
    with pytest.warns(UserWarning) as record:
        ds = load_images(write_folder(tmp_path / "mix", files))
    messages = " | ".join(str(w.message) for w in record)
    assert "2 grayscale images converted to RGB" in messages and "1 images had an alpha channel" in messages
    x = ds.images.numpy()
    assert ds.channels == 3
    assert np.array_equal(x[1], np.repeat(gray[0][None], 3, axis=0))
    assert np.array_equal(x[3], rgba[0, :, :, :3].transpose(2, 0, 1))
    assert np.array_equal(x[4], rgb[1].transpose(2, 0, 1))


def test_all_grayscale_stays_one_channel_and_rgb_to_gray_on_request(tmp_path):
    gray = np.random.default_rng(5).integers(0, 256, size=(3, 8, 8), dtype=np.uint8)
    write_folder(tmp_path / "g", {f"{i}.png": png_bytes(g, "L") for i, g in enumerate(gray)})
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # nothing converted, nothing to say
        ds = load_images(tmp_path / "g")
    assert ds.channels == 1 and np.array_equal(ds.images.numpy()[:, 0], gray)

    rgb = rgb_images(2, seed=6)
    write_folder(tmp_path / "c", {f"{i}.png": png_bytes(x) for i, x in enumerate(rgb)})
    with pytest.warns(UserWarning, match="2 color images converted to grayscale"):
        ds = load_images(tmp_path / "c", channels=1)
    expected = np.stack([np.asarray(PIL.Image.fromarray(x).convert("L")) for x in rgb])
    assert np.array_equal(ds.images.numpy()[:, 0], expected)


def test_npz_nhwc_and_nchw_agree(tmp_path):
    images, labels = rgb_images(6, seed=7), np.arange(6) % 3
    np.savez(tmp_path / "ref.npz", images)  # arr_0, NHWC: EDM/ADM reference batches
    np.savez(tmp_path / "nchw.npz", images=images.transpose(0, 3, 1, 2), labels=labels)
    a, b = load_images(tmp_path / "ref.npz"), load_images(tmp_path / "nchw.npz")
    assert np.array_equal(a.images.numpy(), b.images.numpy())
    assert a.labels is None and b.labels.tolist() == labels.tolist() and b.label_dim == 3
    assert np.array_equal(a.images.numpy(), images.transpose(0, 3, 1, 2))


def test_npz_channel_conversion_matches_pil(tmp_path):
    images = rgb_images(3, seed=8)
    np.savez(tmp_path / "rgb.npz", images)
    with pytest.warns(UserWarning, match="3 color images converted to grayscale"):
        ds = load_images(tmp_path / "rgb.npz", channels=1)
    expected = np.stack([np.asarray(PIL.Image.fromarray(x).convert("L")) for x in images])
    assert np.array_equal(ds.images.numpy()[:, 0], expected)
    gray = images[..., :1]
    np.savez(tmp_path / "gray.npz", gray)
    with pytest.warns(UserWarning, match="3 grayscale images converted to RGB"):
        ds = load_images(tmp_path / "gray.npz", channels=3)
    assert np.array_equal(ds.images.numpy(), np.repeat(gray.transpose(0, 3, 1, 2), 3, axis=1))


def test_npz_errors(tmp_path):
    np.savez(tmp_path / "float.npz", np.zeros((2, 8, 8, 3), np.float32))
    with pytest.raises(DatasetError, match=r"uint8.*got float32"):
        load_images(tmp_path / "float.npz")
    np.savez(tmp_path / "stats.npz", mu=np.zeros(3), sigma=np.eye(3))
    with pytest.raises(DatasetError, match=r"no image array.*'arr_0' or 'images'.*\['mu', 'sigma'\]"):
        load_images(tmp_path / "stats.npz")
    np.savez(tmp_path / "shape.npz", np.zeros((2, 5, 8, 7), np.uint8))
    with pytest.raises(DatasetError, match=r"shape \(2, 5, 8, 7\)"):
        load_images(tmp_path / "shape.npz")


def test_max_images_is_edms_subset(tmp_path):
    images = rgb_images(20, seed=9)
    np.savez(tmp_path / "x.npz", images)
    ds = load_images(tmp_path / "x.npz", max_images=5)
    # EDM training/dataset.py Dataset(max_size): shuffle indices with RandomState(0), keep, sort.
    index = np.arange(20)
    np.random.RandomState(0).shuffle(index)
    keep = np.sort(index[:5])
    assert np.array_equal(ds.images.numpy(), images[keep].transpose(0, 3, 1, 2))
    labels = np.arange(20) % 7
    files = {f"{i:02d}.png": png_bytes(x) for i, x in enumerate(images)}
    files["dataset.json"] = json.dumps({"labels": [[f"{i:02d}.png", int(l)] for i, l in enumerate(labels)]}).encode()
    sub = load_images(write_folder(tmp_path / "f", files), max_images=5)
    assert np.array_equal(sub.images.numpy(), ds.images.numpy()) and sub.labels.tolist() == labels[keep].tolist()


def test_null_labels_mean_unlabelled(tmp_path):
    files = edm_files(rgb_images(2))
    files["dataset.json"] = b'{"labels": null}'  # what EDM's dataset_tool.py writes without labels
    ds = load_images(write_zip(tmp_path / "ds.zip", files))
    assert ds.labels is None and ds.label_dim == 0
    files["dataset.json"] = b'{"labels": [["00000/img00000000.png", 1.5], ["00000/img00000001.png", 0]]}'
    with pytest.raises(DatasetError, match="non-negative class ids, got 1.5"):
        load_images(write_zip(tmp_path / "bad.zip", files))


def test_progress_line(tmp_path, capsys):
    write_folder(tmp_path / "f", {f"{i}.png": png_bytes(x) for i, x in enumerate(rgb_images(3))})
    load_images(tmp_path / "f", progress=True)
    assert "3/3 images" in capsys.readouterr().err
    load_images(tmp_path / "f")  # small folders stay quiet by default
    assert capsys.readouterr().err == ""


def test_load_dataset_names_and_paths(tmp_path, monkeypatch):
    assert load_dataset("digits").content_hash() == load_digits().content_hash()
    ds = load_dataset("digits-16")
    assert tuple(ds.images.shape) == (1797, 1, 16, 16)
    ds = load_dataset("digits-8-c3-train")
    assert ds.channels == 3 and ds.name == "digits-8x8-c3-train"
    assert load_dataset(ds.name).content_hash() == ds.content_hash()  # a dataset's name loads it again
    assert load_dataset("digits", split="test").name == "digits-8x8-c1-test"
    with pytest.raises(ValueError, match="both in the name and as an argument"):
        load_dataset("digits-16", resolution=8)

    np.savez(tmp_path / "mini.npz", rgb_images(4))
    assert len(load_dataset(tmp_path / "mini.npz")) == 4
    monkeypatch.setenv("ONESTEP_DATASETS", str(tmp_path))
    assert len(load_dataset("mini", max_images=2)) == 2
    with pytest.raises(DatasetError, match="did you mean 'mini'"):
        load_dataset("minni")
    with pytest.raises(DatasetError, match="did you mean 'digits'"):
        load_dataset("digts")
