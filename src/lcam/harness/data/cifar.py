"""CIFAR-10 and CIFAR-100 from the "python version" archives of the data set's page.

Layout (what ``cifar-10-python.tar.gz`` / ``cifar-100-python.tar.gz`` extract to)::

    ROOT/cifar-10-batches-py/data_batch_1 ... data_batch_5, test_batch, batches.meta
    ROOT/cifar-100-python/train, test, meta

``root`` may be ``ROOT`` or the extracted folder itself. Every batch file is a pickled
dict with byte-string keys: ``b"data"`` a ``N x 3072`` ``uint8`` array (the 1024 red,
then green, then blue values of each 32 x 32 image, rows top to bottom), and
``b"labels"`` (CIFAR-10) or ``b"fine_labels"`` (CIFAR-100, 100 classes; the 20
coarse labels are not used). The meta files name the classes (``b"label_names"`` /
``b"fine_label_names"``). Train = the five data batches (CIFAR-10, 50,000 images) or
``train`` (CIFAR-100, 50,000); test = 10,000 images.

The pickles are read with an unpickler that only admits the numpy globals an array
needs, so a tampered file cannot run code. Inputs are stored ``uint8 N, 3, 32, 32``
and normalised with the ImageNet mean/std (scale 1/255), training augmentation
``"crop-flip"``, as the paper's demo scripts do.

``download=True`` fetches the archive with ``urllib``, checks its MD5 and extracts
it under ``ROOT``; it needs network access and is never used by the tests.
"""

from __future__ import annotations

import hashlib
import pickle
import shutil
import tarfile
import tempfile
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from lcam.harness.data.bundle import DataBundle, Normalization, Split
from lcam.harness.data.errors import DatasetCorruptError, DatasetNotFoundError

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
CIFAR_PAGE = "https://www.cs.toronto.edu/~kriz/cifar.html"


@dataclass(frozen=True)
class CifarLayout:
    """Where one CIFAR variant's files are and what they contain."""

    name: str
    folder: str
    train_files: tuple[str, ...]
    test_file: str
    meta_file: str
    label_key: bytes
    names_key: bytes
    num_classes: int
    archive: str
    md5: str

    @property
    def url(self) -> str:
        return f"https://www.cs.toronto.edu/~kriz/{self.archive}"

    def how_to_obtain(self, root: Path) -> str:
        return (
            f"Download {self.archive} from {CIFAR_PAGE} and extract it under {root} "
            f"(so that {root / self.folder} exists), or pass download=True."
        )

    def expected_layout(self) -> str:
        files = ", ".join((*self.train_files, self.test_file, self.meta_file))
        return f"ROOT/{self.folder}/{{{files}}} (ROOT may also be the {self.folder} folder itself)"


CIFAR10 = CifarLayout(
    name="cifar10",
    folder="cifar-10-batches-py",
    train_files=tuple(f"data_batch_{i}" for i in range(1, 6)),
    test_file="test_batch",
    meta_file="batches.meta",
    label_key=b"labels",
    names_key=b"label_names",
    num_classes=10,
    archive="cifar-10-python.tar.gz",
    md5="c58f30108f718f92721af3b95e74349a",
)

CIFAR100 = CifarLayout(
    name="cifar100",
    folder="cifar-100-python",
    train_files=("train",),
    test_file="test",
    meta_file="meta",
    label_key=b"fine_labels",
    names_key=b"fine_label_names",
    num_classes=100,
    archive="cifar-100-python.tar.gz",
    md5="eb9058c3a382ffc7106e4002c42a8d85",
)

# Globals a pickled numpy array may reference (protocols 2 to 5, numpy 1 and 2).
_ARRAY_GLOBALS = frozenset(
    {
        ("_codecs", "encode"),
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy.core.multiarray", "scalar"),
        ("numpy.core.numeric", "_frombuffer"),
        ("numpy._core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "scalar"),
        ("numpy._core.numeric", "_frombuffer"),
    }
)


class _ArrayUnpickler(pickle.Unpickler):
    """Unpickles plain containers and numpy arrays; refuses every other global."""

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) not in _ARRAY_GLOBALS:
            raise pickle.UnpicklingError(f"refusing to load global {module}.{name}")
        if module.startswith("numpy.core") and int(np.__version__.split(".")[0]) >= 2:
            module = "numpy._core" + module[len("numpy.core") :]  # numpy 1 pickles
        return super().find_class(module, name)


def _read_pickle(path: Path, layout: CifarLayout, root: Path) -> dict[bytes, Any]:
    if not path.is_file():
        raise DatasetNotFoundError(
            f"{layout.name}: missing file {path}. Expected layout: {layout.expected_layout()}. "
            f"{layout.how_to_obtain(root)}"
        )
    try:
        with path.open("rb") as f:
            content = _ArrayUnpickler(f, encoding="bytes").load()
    except Exception as error:  # any unpickling failure means the file is not usable
        raise DatasetCorruptError(
            f"{layout.name}: cannot read {path} as a CIFAR pickle ({error}). "
            f"{layout.how_to_obtain(root)}"
        ) from error
    if not isinstance(content, dict):
        raise DatasetCorruptError(
            f"{layout.name}: {path} holds a {type(content).__name__}, expected a dict. "
            f"{layout.how_to_obtain(root)}"
        )
    # Files re-pickled under Python 3 may carry str keys; accept both spellings.
    return {k.encode() if isinstance(k, str) else k: v for k, v in content.items()}


def _read_batch(path: Path, layout: CifarLayout, root: Path) -> Split:
    content = _read_pickle(path, layout, root)

    def corrupt(problem: str) -> DatasetCorruptError:
        return DatasetCorruptError(f"{layout.name}: {path} {problem}. {layout.how_to_obtain(root)}")

    if b"data" not in content or layout.label_key not in content:
        keys = sorted(k.decode(errors="replace") for k in content)
        raise corrupt(f"lacks b'data' or {layout.label_key!r} (has {keys})")
    data = content[b"data"]
    if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 2:
        raise corrupt("has b'data' that is not a 2-D uint8 array")
    if data.shape[1] != 3 * 32 * 32:
        raise corrupt(f"has b'data' of shape {data.shape}, expected (N, 3072)")
    labels = np.asarray(content[layout.label_key])
    if labels.shape != (len(data),) or not np.issubdtype(labels.dtype, np.integer):
        raise corrupt(f"does not have {len(data)} integer labels, one per image")
    if len(labels) and not (0 <= labels.min() and labels.max() < layout.num_classes):
        raise corrupt(f"has labels outside [0, {layout.num_classes})")
    inputs = torch.from_numpy(np.ascontiguousarray(data).reshape(-1, 3, 32, 32).copy())
    return Split(inputs, torch.from_numpy(labels.astype(np.int64)))


def _class_names(folder: Path, layout: CifarLayout, root: Path) -> tuple[str, ...] | None:
    path = folder / layout.meta_file
    if not path.is_file():
        return None
    names = _read_pickle(path, layout, root).get(layout.names_key)
    if not isinstance(names, list) or len(names) != layout.num_classes:
        raise DatasetCorruptError(
            f"{layout.name}: {path} lacks {layout.num_classes} {layout.names_key!r}. "
            f"{layout.how_to_obtain(root)}"
        )
    return tuple(n.decode() if isinstance(n, bytes) else str(n) for n in names)


def find_folder(root: Path, layout: CifarLayout) -> Path | None:
    """The extracted folder: ``root/<folder>`` or ``root`` itself; ``None`` if neither."""
    for candidate in (root / layout.folder, root):
        if (candidate / layout.test_file).is_file():
            return candidate
    return None


def download_archive(root: Path, layout: CifarLayout) -> Path:
    """Download, verify and extract ``layout``'s archive under ``root``; return the folder."""
    root.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=root) as scratch:
        archive = Path(scratch) / layout.archive
        with urllib.request.urlopen(layout.url) as response, archive.open("wb") as out:
            shutil.copyfileobj(response, out)
        digest = hashlib.md5(archive.read_bytes()).hexdigest()
        if digest != layout.md5:
            raise DatasetCorruptError(
                f"{layout.name}: {layout.url} downloaded with MD5 {digest}, "
                f"expected {layout.md5}. {layout.how_to_obtain(root)}"
            )
        if not hasattr(tarfile, "data_filter"):  # Python < 3.10.12 cannot extract safely
            raise DatasetNotFoundError(
                f"{layout.name}: this Python cannot extract archives safely; extract "
                f"{layout.archive} by hand. {layout.how_to_obtain(root)}"
            )
        with tarfile.open(archive, "r:gz") as tar:
            tar.extractall(root, filter="data")
    return root / layout.folder


def load_cifar(layout: CifarLayout, root: Path, download_missing: bool) -> DataBundle:
    folder = find_folder(root, layout)
    if folder is None and download_missing:
        folder = download_archive(root, layout)
    if folder is None:
        raise DatasetNotFoundError(
            f"{layout.name}: no data under {root}. Expected layout: {layout.expected_layout()}. "
            f"{layout.how_to_obtain(root)}"
        )
    parts = [_read_batch(folder / name, layout, root) for name in layout.train_files]
    train = Split(torch.cat([p.inputs for p in parts]), torch.cat([p.targets for p in parts]))
    test = _read_batch(folder / layout.test_file, layout, root)
    return DataBundle(
        name=layout.name,
        train=train,
        test=test,
        num_classes=layout.num_classes,
        input_shape=(3, 32, 32),
        kind="image",
        normalization=Normalization(scale=1 / 255, mean=IMAGENET_MEAN, std=IMAGENET_STD),
        augment="crop-flip",
        class_names=_class_names(folder, layout, root),
    )


def load_cifar10(*, root: Path, seed: int, download: bool = False) -> DataBundle:
    """CIFAR-10 (50,000 / 10,000 images, 10 classes); ``seed`` is unused."""
    return load_cifar(CIFAR10, root, download)


def load_cifar100(*, root: Path, seed: int, download: bool = False) -> DataBundle:
    """CIFAR-100 with the 100 fine labels (50,000 / 10,000 images); ``seed`` is unused."""
    return load_cifar(CIFAR100, root, download)
