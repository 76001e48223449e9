"""Data: dataset registry and readers, the seeds' preprocessing, splits and reproducible loaders."""

from __future__ import annotations

import gzip
import os
from pathlib import Path

import numpy as np
import pytest
import torch

from bnnlib.data import (
    BatchLoader,
    DatasetNotFoundError,
    build_loaders,
    check_dataset,
    clip_noise,
    dataset_cache_folder,
    get_preprocess,
    list_datasets,
    load_dataset,
    pad_crop_flip,
    stratified_subset,
    validation_split,
)
from bnnlib.data import registry as registry_module
from bnnlib.data.readers import (
    CIFAR10_CLASSES,
    decode_jpeg,
    iter_tar_files,
    jpeg_member_slot,
    nchw_from_torchvision,
    read_idx,
    read_labels_js,
    train_positions,
)

DATA = os.environ.get("BNNLIB_DATA_DIR", "")
needs_data = pytest.mark.skipif(
    not DATA or not Path(DATA).is_dir(), reason="BNNLIB_DATA_DIR unset or missing"
)
MNIST_TRAIN_COUNTS = [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
MNIST_TEST_COUNTS = [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]
PNG_TEST_COUNTS = [103, 89, 100, 103, 90, 86, 112, 102, 106, 109]


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """Tiny per-batch ops thrash with several intra-op threads on a shared 2-core machine."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture
def offline_empty(tmp_path, monkeypatch):
    """An empty data folder, an empty cache and no internet."""
    data = tmp_path / "data"
    data.mkdir()
    monkeypatch.setenv("BNNLIB_DATA_DIR", str(data))
    monkeypatch.setenv("BNNLIB_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setattr(registry_module, "_reachable", lambda url: False)
    return data


def _loader(images, preprocess="resize_and_flip", batch_size=10, *, train=True, drop_last=True):
    labels = torch.arange(len(images))
    return BatchLoader(
        images,
        labels,
        np.arange(len(images)),
        get_preprocess(preprocess),
        batch_size,
        train=train,
        drop_last=drop_last,
        seed=7,
        stream=0,
    )


def _batches(loader):
    return [(x.clone(), y.clone()) for x, y in loader]


# --- datasets -------------------------------------------------------------------------------------


@needs_data
def test_mnist_shapes_label_counts_and_pixel_stats():
    info, a = load_dataset("mnist")
    assert info.label == "MNIST" and info.exact
    assert a.train_x.shape == (60_000, 1, 28, 28) and a.test_x.shape == (10_000, 1, 28, 28)
    assert np.bincount(a.train_y).tolist() == MNIST_TRAIN_COUNTS
    assert np.bincount(a.test_y).tolist() == MNIST_TEST_COUNTS
    pixels = a.train_x.astype(np.float64) / 255
    assert pixels.mean() == pytest.approx(0.1307, abs=5e-5)
    assert pixels.std() == pytest.approx(0.3081, abs=5e-5)


@needs_data
def test_png_subset_pixels_and_labels():
    info, a = load_dataset("cifar10-png-subset")
    assert info.label == "CIFAR-10 PNG subset (2k train / 1k test)"
    assert a.train_x.shape == (2_000, 3, 32, 32) and a.test_x.shape == (1_000, 3, 32, 32)
    assert a.train_x[0, 0, 0, :5].tolist() == [59, 43, 50, 68, 98]
    assert a.test_x[0, 0, 0, :5].tolist() == [158, 159, 165, 166, 160]
    assert np.bincount(a.test_y).tolist() == PNG_TEST_COUNTS


@needs_data
def test_jpeg_members_map_to_png_subset_images():
    """README rule: train image i is train/<class>/k.jpg, k = earlier train images of its class."""
    root = Path(DATA)
    labels = read_labels_js(root / "CIFAR10-convnetjs-subset" / "cifar10_labels.js")[:50_000]
    _, png = load_dataset("cifar10-png-subset")
    wanted = {}
    for i in (0, 1, 2, 3, 4, 29):
        cls = int(labels[i])
        k = int((labels[:i] == cls).sum())
        wanted[f"train/{CIFAR10_CLASSES[cls]}/{k:04d}.jpg"] = i
        assert jpeg_member_slot(f"train/{CIFAR10_CLASSES[cls]}/{k:04d}.jpg") == ("train", cls, k)
        assert train_positions(labels)[cls][k] == i
    decoded = {}
    for name, data in iter_tar_files(root / "CIFAR10-jpeg" / "cifar10-jpeg-q75.tar.gz"):
        if name in wanted:
            decoded[wanted[name]] = decode_jpeg(data).astype(np.float64)
            if len(decoded) == len(wanted):
                break
    for i, img in decoded.items():
        errors = np.abs(img - png.train_x[: len(png.train_x) // 10].astype(np.float64))
        per_image = errors.reshape(len(errors), -1).mean(axis=1)
        assert per_image[i] < 10 and per_image.argmin() == i


@needs_data
def test_jpeg_dataset_order_and_labels():
    """Full decode (about 10 s, once: later runs read the .npy cache)."""
    info, a = load_dataset("cifar10-jpeg")
    assert info.label == "CIFAR-10 (JPEG re-encoded)" and not info.exact
    labels = read_labels_js(Path(DATA) / "CIFAR10-convnetjs-subset" / "cifar10_labels.js")
    assert np.array_equal(a.train_y, labels[:50_000])
    assert np.bincount(a.test_y).tolist() == [1000] * 10
    assert np.all(np.diff(a.test_y) >= 0)
    _, png = load_dataset("cifar10-png-subset")
    mae = np.abs(a.train_x[:2000].astype(np.float64) - png.train_x).mean()
    assert 4 < mae < 8


def test_registry_names_and_unknown_name():
    assert set(list_datasets()) == {
        "mnist",
        "cifar10",
        "cifar10-jpeg",
        "cifar10-png-subset",
        "cifar100",
    }
    with pytest.raises(ValueError, match="unknown dataset 'svhn'.*cifar10-jpeg"):
        check_dataset("svhn")


@pytest.mark.parametrize(
    "name", ["mnist", "cifar10", "cifar10-jpeg", "cifar10-png-subset", "cifar100"]
)
def test_missing_dataset_message(offline_empty, name):
    with pytest.raises(DatasetNotFoundError) as err:
        check_dataset(name)
    message = str(err.value)
    assert isinstance(err.value, ValueError) and "\n" not in message
    assert repr(name) in message and str(offline_empty) in message and "BNNLIB_DATA_DIR" in message
    if name == "cifar10":
        assert "'cifar10-jpeg'" in message and "'cifar10-png-subset'" in message
    with pytest.raises(DatasetNotFoundError):
        build_loaders(name, "default", 10)


def test_missing_dataset_message_when_data_dir_unset(offline_empty, monkeypatch):
    monkeypatch.delenv("BNNLIB_DATA_DIR")
    with pytest.raises(DatasetNotFoundError, match=r"\$BNNLIB_DATA_DIR/CIFAR10-jpeg.*is unset"):
        check_dataset("cifar10-jpeg")


@needs_data
def test_check_dataset_does_not_decode(tmp_path, monkeypatch):
    monkeypatch.setenv("BNNLIB_CACHE_DIR", str(tmp_path))
    assert check_dataset("cifar10-png-subset").train_size == 2000
    assert not dataset_cache_folder("cifar10-png-subset").exists()
    load_dataset("cifar10-png-subset")
    assert (dataset_cache_folder("cifar10-png-subset") / "train_x.npy").is_file()
    assert not any(Path(DATA).rglob("*.npy"))


def test_read_idx_checks_header(tmp_path):
    good = tmp_path / "good.gz"
    with gzip.open(good, "wb") as fh:
        fh.write(bytes([0, 0, 8, 2, 0, 0, 0, 2, 0, 0, 0, 3, 1, 2, 3, 4, 5, 6]))
    assert read_idx(good).tolist() == [[1, 2, 3], [4, 5, 6]]
    bad = tmp_path / "bad.gz"
    with gzip.open(bad, "wb") as fh:
        fh.write(bytes([0, 0, 8, 1, 0, 0, 0, 9, 1, 2]))
    with pytest.raises(ValueError, match="header says"):
        read_idx(bad)


def test_torchvision_layouts_become_nchw():
    assert nchw_from_torchvision(torch.zeros(5, 28, 28, dtype=torch.uint8)).shape == (5, 1, 28, 28)
    hwc = np.arange(2 * 4 * 4 * 3, dtype=np.uint8).reshape(2, 4, 4, 3)
    chw = nchw_from_torchvision(hwc)
    assert chw.shape == (2, 3, 4, 4) and chw[1, 2, 3, 0] == hwc[1, 3, 0, 2]


# --- preprocessing --------------------------------------------------------------------------------


def _pattern(n: int) -> torch.Tensor:
    """Images whose every pixel value identifies its (row, column, channel); never 0."""
    rows = torch.arange(32).view(1, 1, 32, 1)
    cols = torch.arange(32).view(1, 1, 1, 32)
    chans = torch.arange(3).view(1, 3, 1, 1)
    img = ((rows * 7 + cols * 3 + chans * 50) % 250 + 1).to(torch.uint8)
    return img.expand(n, 3, 32, 32).contiguous()


def test_resize_and_flip_is_pad4_crop_and_horizontal_flip():
    x = _pattern(400)
    g = torch.Generator().manual_seed(0)
    out, y = get_preprocess("resize_and_flip")(x, torch.zeros(400), train=True, generator=g)
    padded = torch.nn.functional.pad(x[0].float() / 127.5 - 1, (4, 4, 4, 4), value=-1.0)
    candidates = {
        (dy, dx, flip): (c.flip(-1) if flip else c)
        for dy in range(9)
        for dx in range(9)
        for flip in (False, True)
        for c in [padded[:, dy : dy + 32, dx : dx + 32]]
    }
    seen = set()
    for img in out:
        match = [key for key, cand in candidates.items() if torch.equal(img, cand)]
        assert len(match) == 1
        seen.add(match[0])
    assert {k[0] for k in seen} == set(range(9)) and {k[1] for k in seen} == set(range(9))
    assert {k[2] for k in seen} == {False, True}
    assert (out == -1).any() and out.min() == -1 and out.max() <= 1
    evaluated, _ = get_preprocess("default")(x, y, train=False, generator=g)
    assert torch.equal(evaluated, x.float() / 127.5 - 1)


def test_pad_crop_flip_frequencies():
    g = torch.Generator().manual_seed(1)
    x = torch.zeros(4000, 1, 3, 3, dtype=torch.uint8)
    x[:, :, :, 0] = 1
    out = pad_crop_flip(x, 1, g)
    centre_ones_left = (out[:, 0, 1, 0] == 1).float().mean()
    assert 0.15 < centre_ones_left < 0.19  # shift 0 (1/3) and no flip (1/2): 1/6


def test_standardizing_pipelines():
    x = torch.tensor([0, 255], dtype=torch.uint8).view(2, 1, 1, 1).expand(2, 3, 2, 2).contiguous()
    mean = torch.tensor([0.4914, 0.4822, 0.4465]).view(1, 3, 1, 1)
    std = torch.tensor([0.2023, 0.1994, 0.2010]).view(1, 3, 1, 1)
    out, _ = get_preprocess("bayesbinn_cifar10")(x, torch.zeros(2), train=False)
    torch.testing.assert_close(out, (x.float() / 255 - mean) / std)
    mnist = torch.tensor([0, 255], dtype=torch.uint8).view(2, 1, 1, 1)
    out, _ = get_preprocess("mnist_standardize")(mnist, torch.zeros(2), train=False)
    torch.testing.assert_close(out.flatten(), torch.tensor([-0.1307, 0.8693]) / 0.3081)
    with pytest.raises(ValueError, match="3 entries but the batch has 1 channels"):
        get_preprocess("bayesbinn_cifar10")(mnist, torch.zeros(2), train=False)
    padded, _ = get_preprocess("bayesbinn_cifar10")(
        _pattern(200), torch.zeros(200), train=True, generator=torch.Generator().manual_seed(0)
    )
    pad_value = (-mean / std).expand(200, 3, 32, 32)
    assert (padded == pad_value).any()


def test_unknown_preprocess_lists_valid_names():
    with pytest.raises(ValueError, match="unknown preprocess_fn 'zca'.*resize_and_flip.*AE"):
        get_preprocess("zca")


def test_noise_test_vectors():
    """Spec 2g TV-noise: clip(x + 0.1 eps, -1, 1)."""
    out = clip_noise(torch.tensor([0.95, -0.2]), torch.tensor([1.0, -0.5]), 0.1)
    torch.testing.assert_close(out, torch.tensor([1.0, -0.25]))


def test_ae_noise_model():
    ae = get_preprocess("AE")
    grey = torch.full((64, 3, 32, 32), 128, dtype=torch.uint8)
    noisy, clean = ae(grey, torch.zeros(64), train=True, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(clean, grey.float() / 127.5 - 1)
    diff = noisy - clean
    assert diff.std().item() == pytest.approx(0.1, rel=0.02)
    assert abs(diff.mean().item()) < 2e-3
    white = torch.full((64, 3, 32, 32), 255, dtype=torch.uint8)
    noisy, clean = ae(
        white, torch.zeros(64), train=False, generator=torch.Generator().manual_seed(0)
    )
    assert noisy.max() == 1.0 and 0.45 < (noisy == 1.0).float().mean() < 0.55


def test_ae_loader_noise_fresh_per_epoch_and_reproducible():
    images = torch.randint(0, 256, (40, 3, 8, 8), dtype=torch.uint8)
    train = _loader(images, "AE")
    first = _batches(train)
    again = _batches(train)
    train.set_epoch(1)
    other = _batches(train)
    for (a, ta), (b, tb) in zip(first, again, strict=True):
        assert torch.equal(a, b) and torch.equal(ta, tb)
    assert not torch.equal(first[0][0], other[0][0])
    test = _loader(images, "AE", train=False, drop_last=False)
    t1, t2 = _batches(test), _batches(test)
    assert all(torch.equal(a, b) for (a, _), (b, _) in zip(t1, t2, strict=True))
    assert torch.equal(torch.cat([t for _, t in t1]), images.float() / 127.5 - 1)


# --- loaders --------------------------------------------------------------------------------------


def test_set_epoch_determinism_and_resume():
    images = _pattern(105)
    loader = _loader(images)
    loader.set_epoch(3)
    run = _batches(loader)
    resumed = _loader(images)
    resumed.set_epoch(3)
    assert all(
        torch.equal(a, b) and torch.equal(ya, yb)
        for (a, ya), (b, yb) in zip(run, _batches(resumed), strict=True)
    )
    loader.set_epoch(4)
    next_epoch = _batches(loader)
    assert not torch.equal(run[0][1], next_epoch[0][1])
    seen = torch.cat([y for _, y in run])
    assert len(set(seen.tolist())) == 100
    with pytest.raises(ValueError, match="epoch must be a non-negative int"):
        loader.set_epoch(-1)


def test_drop_last_train_keeps_remainder_in_eval():
    images = _pattern(105)
    train = _loader(images, batch_size=10)
    assert len(train) == 10 and train.num_samples == 105
    assert [len(y) for _, y in train] == [10] * 10
    test = _loader(images, batch_size=10, train=False, drop_last=False)
    assert len(test) == 11
    batches = _batches(test)
    assert [len(y) for _, y in batches] == [10] * 10 + [5]
    assert torch.equal(torch.cat([y for _, y in batches]), torch.arange(105))


def test_validation_split_and_stratified_subset():
    train, val = validation_split(1000, 0.1, seed=3)
    assert len(val) == 100 and len(train) == 900
    assert np.intersect1d(train, val).size == 0 and np.union1d(train, val).size == 1000
    assert np.array_equal(validation_split(1000, 0.1, seed=3)[1], val)
    assert not np.array_equal(validation_split(1000, 0.1, seed=4)[1], val)
    labels = np.repeat(np.arange(4), [100, 200, 300, 400])
    subset = stratified_subset(train, labels, 90, seed=0, stream=0)
    assert len(np.unique(subset)) == 90 and np.isin(subset, train).all()
    proportional = 90 * np.bincount(labels[train]) / len(train)
    assert np.all(np.abs(np.bincount(labels[subset]) - proportional) <= 1)
    assert np.array_equal(subset, stratified_subset(train, labels, 90, seed=0, stream=0))
    with pytest.raises(ValueError, match="validation_split must be in"):
        validation_split(10, 1.0, seed=0)


@needs_data
def test_build_loaders_png_subset_split_and_eval_preprocessing():
    bundle = build_loaders(
        "cifar10-png-subset", "resize_and_flip", 64, validation_split=0.1, test_subset=100, seed=5
    )
    train_idx, val_idx = bundle.train.indices.numpy(), bundle.val.indices.numpy()
    assert len(val_idx) == 200 and len(train_idx) == 1800
    assert np.intersect1d(train_idx, val_idx).size == 0
    assert len(bundle.train) == 1800 // 64 and len(bundle.val) == 4 and len(bundle.test) == 2
    assert bundle.test.num_samples == 100
    _, arrays = load_dataset("cifar10-png-subset")
    x, y = next(iter(bundle.val))
    first = torch.from_numpy(arrays.train_x[val_idx[:64]])
    assert torch.equal(x, first.float() / 127.5 - 1)
    assert torch.equal(y, torch.from_numpy(arrays.train_y[val_idx[:64]]))
    assert x.dtype == torch.float32 and y.dtype == torch.int64
    again = build_loaders(
        "cifar10-png-subset", "resize_and_flip", 64, validation_split=0.1, test_subset=100, seed=5
    )
    assert np.array_equal(again.val.indices.numpy(), val_idx)
    sub = build_loaders("cifar10-png-subset", "AE", 32, validation_split=0.1, train_subset=500)
    assert sub.train.num_samples == 500 and np.isin(sub.train.indices, sub.val.indices).sum() == 0
    noisy, clean = next(iter(sub.test))
    assert noisy.shape == clean.shape == (32, 3, 32, 32)


@needs_data
@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"batch_size": 0}, "batch_size must be an int >= 1, got 0"),
        ({"batch_size": 2.5}, "batch_size must be an int >= 1, got 2.5"),
        ({"batch_size": 4000}, "batch_size=4000 exceeds the 2000 training images"),
        ({"validation_split": 1.0}, "validation_split must be in \\[0, 1\\), got 1.0"),
        ({"validation_split": 0.0001}, "holds out no image"),
        ({"train_subset": 0}, "train_subset must be an int in 1..2000, got 0"),
        ({"validation_split": 0.5, "train_subset": 1001}, "train_subset must be an int in 1..1000"),
        ({"test_subset": 1001}, "test_subset must be an int in 1..1000, got 1001"),
        ({"seed": -1}, "seed must be an int >= 0, got -1"),
    ],
)
def test_build_loaders_validates_arguments(kwargs, message):
    args = {"batch_size": 10, **kwargs}
    with pytest.raises(ValueError, match=message):
        build_loaders("cifar10-png-subset", "default", **args)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_loader_runs_on_cuda():
    images = _pattern(50).cuda()
    for name in ("resize_and_flip", "AE", "bayesbinn_cifar10"):
        x, t = next(iter(_loader(images, name)))
        assert x.is_cuda and t.is_cuda


def test_corrupt_torchvision_folder_is_reported(offline_empty):
    (offline_empty / "cifar-10-batches-py").mkdir()
    assert check_dataset("cifar10").label == "CIFAR-10"
    with pytest.raises(DatasetNotFoundError, match=f"'cifar10': reading {offline_empty} failed"):
        load_dataset("cifar10")
