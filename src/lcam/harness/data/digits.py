"""The 8 x 8 handwritten digits that ship with scikit-learn (no download needed).

scikit-learn's ``load_digits`` holds 1,797 images of the digits 0-9 (the UCI "Optical
Recognition of Handwritten Digits" test set), each 8 x 8 pixels with integer grey
levels 0..16. They make a real, small classification task that trains in seconds on a
CPU, which is what the ``digits`` demo needs.

Split
    Fixed, the same for every run: ``train_test_split(test_size=360,
    random_state=0, stratify=labels)`` gives 1,437 training and 360 test images
    with the class proportions of the whole set. ``seed`` does not change it;
    seeds vary the training, not the data.

Storage and normalisation
    ``uint8 N, 1, 8, 8`` holding the grey levels 0..16; scale 1/16, then the mean and
    std of the training split's pixels. No augmentation: random crops and mirror
    images of digits would change what they mean.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from lcam.harness.data.bundle import DataBundle, Normalization, Split, channel_statistics

TEST_SIZE = 360
SPLIT_RANDOM_STATE = 0
LEVELS = 16


def load_digits(*, root: Path, seed: int) -> DataBundle:
    """The digits bundle (1,437 / 360 images, 10 classes); ``root`` and ``seed`` are unused."""
    from sklearn.datasets import load_digits as sklearn_load_digits
    from sklearn.model_selection import train_test_split

    digits = sklearn_load_digits()
    images = np.rint(digits.images).astype(np.uint8)[:, None]  # N, 1, 8, 8 in 0..16
    labels = digits.target.astype(np.int64)
    train_x, test_x, train_y, test_y = train_test_split(
        images, labels, test_size=TEST_SIZE, random_state=SPLIT_RANDOM_STATE, stratify=labels
    )
    train = Split(torch.from_numpy(train_x), torch.from_numpy(train_y))
    test = Split(torch.from_numpy(test_x), torch.from_numpy(test_y))
    mean, std = channel_statistics(train.inputs, 1 / LEVELS)
    return DataBundle(
        name="digits",
        train=train,
        test=test,
        num_classes=10,
        input_shape=(1, 8, 8),
        kind="image",
        normalization=Normalization(scale=1 / LEVELS, mean=mean, std=std),
        augment="none",
        class_names=tuple(str(d) for d in range(10)),
    )
