"""CIFAR-10/100 loading from pickle batches written in the real on-disk format."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest
import torch

from lcam.harness.data import DatasetCorruptError, DatasetNotFoundError, load_data

TRAIN_PER_BATCH = 4
TEST_SIZE = 5


def _write_pickle(path: Path, content: object) -> None:
    # The real files are Python 2 pickles (protocol 2) of dicts with byte-string keys.
    with path.open("wb") as f:
        pickle.dump(content, f, protocol=2)


def _images(rng: np.random.Generator, count: int) -> np.ndarray:
    return rng.integers(0, 256, size=(count, 3072), dtype=np.uint8)


def write_cifar10(root: Path, seed: int = 0) -> dict[str, np.ndarray]:
    """A tiny cifar-10-batches-py folder; returns the arrays written."""
    rng = np.random.default_rng(seed)
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    written: dict[str, np.ndarray] = {}
    for i in range(1, 6):
        data = _images(rng, TRAIN_PER_BATCH)
        labels = rng.integers(0, 10, size=TRAIN_PER_BATCH)
        _write_pickle(
            folder / f"data_batch_{i}",
            {
                b"batch_label": f"training batch {i} of 5".encode(),
                b"labels": [int(v) for v in labels],
                b"data": data,
                b"filenames": [f"img_{i}_{k}.png".encode() for k in range(TRAIN_PER_BATCH)],
            },
        )
        written[f"data_{i}"], written[f"labels_{i}"] = data, labels
    data, labels = _images(rng, TEST_SIZE), rng.integers(0, 10, size=TEST_SIZE)
    _write_pickle(
        folder / "test_batch",
        {
            b"batch_label": b"testing batch 1 of 1",
            b"labels": [int(v) for v in labels],
            b"data": data,
        },
    )
    written["test_data"], written["test_labels"] = data, labels
    names = [n.encode() for n in ("airplane", "automobile", "bird", "cat", "deer")]
    names += [n.encode() for n in ("dog", "frog", "horse", "ship", "truck")]
    _write_pickle(
        folder / "batches.meta",
        {b"num_cases_per_batch": 10000, b"label_names": names, b"num_vis": 3072},
    )
    return written


def write_cifar100(root: Path) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(1)
    folder = root / "cifar-100-python"
    folder.mkdir(parents=True)
    written: dict[str, np.ndarray] = {}
    for split, count in (("train", 7), ("test", 3)):
        data, fine = _images(rng, count), rng.integers(0, 100, size=count)
        coarse = rng.integers(0, 20, size=count)
        _write_pickle(
            folder / split,
            {
                b"filenames": [b"x.png"] * count,
                b"batch_label": split.encode(),
                b"fine_labels": [int(v) for v in fine],
                b"coarse_labels": [int(v) for v in coarse],
                b"data": data,
            },
        )
        written[f"{split}_data"], written[f"{split}_fine"] = data, fine
    _write_pickle(
        folder / "meta",
        {
            b"fine_label_names": [f"class{i}".encode() for i in range(100)],
            b"coarse_label_names": [f"super{i}".encode() for i in range(20)],
        },
    )
    return written


def test_cifar10_loads_all_batches_in_order_as_uint8_chw(tmp_path: Path) -> None:
    written = write_cifar10(tmp_path)
    bundle = load_data("cifar10", root=tmp_path)

    assert bundle.train.inputs.shape == (5 * TRAIN_PER_BATCH, 3, 32, 32)
    assert bundle.test.inputs.shape == (TEST_SIZE, 3, 32, 32)
    assert bundle.train.inputs.dtype == torch.uint8
    assert bundle.train.targets.dtype == torch.int64
    expected_data = np.concatenate([written[f"data_{i}"] for i in range(1, 6)])
    expected_labels = np.concatenate([written[f"labels_{i}"] for i in range(1, 6)])
    assert torch.equal(bundle.train.targets, torch.from_numpy(expected_labels))
    # Rows are the 1024 red, then green, then blue values, each row-major.
    assert int(bundle.train.inputs[7, 1, 2, 3]) == int(expected_data[7, 1024 + 2 * 32 + 3])
    assert torch.equal(
        bundle.train.inputs.reshape(len(expected_data), -1), torch.from_numpy(expected_data)
    )
    assert torch.equal(
        bundle.test.inputs.reshape(TEST_SIZE, -1), torch.from_numpy(written["test_data"])
    )
    assert torch.equal(bundle.test.targets, torch.from_numpy(written["test_labels"]))
    assert bundle.class_names is not None and bundle.class_names[0] == "airplane"
    assert (bundle.num_classes, bundle.input_shape, bundle.kind) == (10, (3, 32, 32), "image")
    assert bundle.augment == "crop-flip"


def test_cifar_normalisation_is_imagenet_mean_std_on_unit_scale(tmp_path: Path) -> None:
    write_cifar10(tmp_path)
    norm = load_data("cifar10", root=tmp_path).normalization
    assert norm.scale == pytest.approx(1 / 255)
    assert norm.mean == (0.485, 0.456, 0.406)
    assert norm.std == (0.229, 0.224, 0.225)


def test_cifar10_root_may_be_the_extracted_folder_itself(tmp_path: Path) -> None:
    write_cifar10(tmp_path)
    from_parent = load_data("cifar10", root=tmp_path)
    from_folder = load_data("cifar10", root=tmp_path / "cifar-10-batches-py")
    assert torch.equal(from_parent.train.inputs, from_folder.train.inputs)


def test_cifar100_uses_fine_labels(tmp_path: Path) -> None:
    written = write_cifar100(tmp_path)
    bundle = load_data("cifar100", root=tmp_path)
    assert bundle.num_classes == 100
    assert torch.equal(bundle.train.targets, torch.from_numpy(written["train_fine"]))
    assert torch.equal(bundle.test.targets, torch.from_numpy(written["test_fine"]))
    assert torch.equal(bundle.train.inputs.reshape(7, -1), torch.from_numpy(written["train_data"]))
    assert bundle.class_names is not None and bundle.class_names[99] == "class99"


def test_missing_cifar_names_path_layout_and_download_page(tmp_path: Path) -> None:
    with pytest.raises(DatasetNotFoundError) as info:
        load_data("cifar10", root=tmp_path)
    message = str(info.value)
    assert str(tmp_path) in message
    assert "cifar-10-batches-py" in message and "data_batch_1" in message
    assert (
        "cifar-10-python.tar.gz" in message
        and "https://www.cs.toronto.edu/~kriz/cifar.html" in message
    )
    assert isinstance(info.value, FileNotFoundError)

    with pytest.raises(DatasetNotFoundError, match="cifar-100-python.tar.gz"):
        load_data("cifar100", root=tmp_path)


def test_missing_batch_file_is_named(tmp_path: Path) -> None:
    write_cifar10(tmp_path)
    (tmp_path / "cifar-10-batches-py" / "data_batch_3").unlink()
    with pytest.raises(DatasetNotFoundError, match="data_batch_3"):
        load_data("cifar10", root=tmp_path)


def test_truncated_batch_is_reported_as_corrupt(tmp_path: Path) -> None:
    write_cifar10(tmp_path)
    path = tmp_path / "cifar-10-batches-py" / "data_batch_2"
    path.write_bytes(path.read_bytes()[:100])
    with pytest.raises(DatasetCorruptError, match="data_batch_2") as info:
        load_data("cifar10", root=tmp_path)
    assert isinstance(info.value, ValueError)


def test_batch_with_wrong_image_size_is_reported_as_corrupt(tmp_path: Path) -> None:
    write_cifar10(tmp_path)
    _write_pickle(
        tmp_path / "cifar-10-batches-py" / "test_batch",
        {b"labels": [0, 1], b"data": np.zeros((2, 1000), dtype=np.uint8)},
    )
    with pytest.raises(DatasetCorruptError, match=r"test_batch.*\(N, 3072\)"):
        load_data("cifar10", root=tmp_path)


class _RunsCode:
    def __reduce__(self) -> tuple[object, tuple[str]]:
        return (print, ("this must never run",))


def test_pickle_that_would_run_code_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    write_cifar10(tmp_path)
    _write_pickle(tmp_path / "cifar-10-batches-py" / "data_batch_1", {b"data": _RunsCode()})
    with pytest.raises(DatasetCorruptError, match=r"refusing to load global \w+\.print"):
        load_data("cifar10", root=tmp_path)
    assert "must never run" not in capsys.readouterr().out


def _archive_of(folder_parent: Path) -> bytes:
    """cifar-10-python.tar.gz as the page serves it: the folder at the archive root."""
    import io
    import tarfile

    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        tar.add(folder_parent / "cifar-10-batches-py", arcname="cifar-10-batches-py")
    return buffer.getvalue()


def test_download_verifies_the_md5_and_extracts(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import hashlib
    import io
    from dataclasses import replace

    from lcam.harness.data import cifar

    write_cifar10(tmp_path / "source")
    archive = _archive_of(tmp_path / "source")
    requested: list[str] = []

    def fake_urlopen(url: str) -> io.BytesIO:  # no network in tests
        requested.append(url)
        return io.BytesIO(archive)

    monkeypatch.setattr(cifar.urllib.request, "urlopen", fake_urlopen)
    with pytest.raises(DatasetCorruptError, match="MD5"):
        cifar.load_cifar(cifar.CIFAR10, tmp_path / "wrong", download_missing=True)
    assert requested == ["https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"]

    layout = replace(cifar.CIFAR10, md5=hashlib.md5(archive).hexdigest())
    bundle = cifar.load_cifar(layout, tmp_path / "data", download_missing=True)
    assert (tmp_path / "data" / "cifar-10-batches-py" / "test_batch").is_file()
    assert len(bundle.train) == 5 * TRAIN_PER_BATCH
    assert not list((tmp_path / "data").glob("tmp*"))  # the scratch download is gone
