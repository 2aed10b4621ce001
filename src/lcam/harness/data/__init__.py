"""In-memory data sets and the batch loader of the experiment harness.

Airbench-style: a whole data set lives on the training device as integer tensors
(images ``uint8 N, C, H, W``, audio ``int16 N, 1, T``); batches are gathered,
augmented and normalised with tensor ops on that device.

Built-in data sets (:func:`load_data`)
    ========================  =========================================================
    ``digits``                scikit-learn's 8x8 digits, fixed 1,437 / 360 split
    ``cifar10``, ``cifar100`` the python-pickle archives under ``root``
    ``speechcommands``        Speech Commands v0.02 folder tree, 1 s clips at 8 kHz
    ``synthetic-cifar``       seeded random CIFAR-shaped data (options ``train_size``,
                              ``test_size``, ``num_classes``)
    ========================  =========================================================

Each module's docstring gives the on-disk layout, the split and the normalisation.
Missing or malformed files raise :class:`DatasetNotFoundError` /
:class:`DatasetCorruptError` (both :class:`DatasetError`) naming the path, the
expected layout and how to obtain the data.

Your own data
    Pass ``package.module:function`` where a data set name is expected. The harness
    imports ``package.module`` and calls ``function(root=ROOT, seed=SEED)`` with the
    run's data root (a ``pathlib.Path``) and seed, and expects a :class:`DataBundle`
    back: ``train`` and ``test`` :class:`Split` (inputs ``N, *input_shape`` in any
    real dtype, ideally the compact stored one; targets ``int64`` in
    ``[0, num_classes)``), ``num_classes``, ``input_shape``, ``kind`` (``"image"``
    or ``"audio"``), a :class:`Normalization` (``scale`` then per-channel ``mean`` /
    ``std``) and ``augment`` (``"crop-flip"`` needs ``C, H, W`` inputs, else
    ``"none"``). Return the tensors on the CPU; the harness moves them.

Batches
    :class:`BatchLoader` yields ``(float32 inputs, int64 targets)``; the order and
    augmentation of an epoch are a pure function of ``(seed, epoch)``, and
    ``batch_size`` is global across ranks (see :mod:`lcam.harness.data.loader`).
"""

from lcam.harness.data.bundle import DataBundle, Normalization, Split
from lcam.harness.data.errors import DatasetCorruptError, DatasetError, DatasetNotFoundError
from lcam.harness.data.loader import CROP_PADDING, BatchLoader, EpochPlan, crop_flip, epoch_seed
from lcam.harness.data.registry import (
    DATA_ROOT_VARIABLE,
    dataset_names,
    dataset_options,
    default_data_root,
    load_data,
    register_dataset,
)

__all__ = [
    "CROP_PADDING",
    "DATA_ROOT_VARIABLE",
    "BatchLoader",
    "DataBundle",
    "DatasetCorruptError",
    "DatasetError",
    "DatasetNotFoundError",
    "EpochPlan",
    "Normalization",
    "Split",
    "crop_flip",
    "dataset_names",
    "dataset_options",
    "default_data_root",
    "epoch_seed",
    "load_data",
    "register_dataset",
]
