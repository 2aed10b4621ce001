"""Speech Commands v0.02 as 1-second, 8 kHz, 16-bit clips for M11.

Layout (what ``speech_commands_v0.02.tar.gz`` extracts to; ``root`` may be this
folder or a parent holding ``speech_commands_v0.02/`` or
``SpeechCommands/speech_commands_v0.02/``)::

    ROOT/<label>/<speaker>_nohash_<n>.wav    16 kHz mono 16-bit clips, <= 1 s
    ROOT/_background_noise_/*.wav            long noise recordings (not used)
    ROOT/validation_list.txt                 relative paths, one a line
    ROOT/testing_list.txt                    relative paths, one a line

Splits
    test = the files named in ``testing_list.txt``; train = every other clip that
    is not named in ``validation_list.txt`` (the validation clips are not used, as
    in the paper's table, which reports test error); ``_background_noise_`` is
    skipped. Labels are the sorted label folder names (35 words in v0.02). Clips are
    in sorted path order.

Decoding
    ``soundfile`` reads each clip as float (int16 / 32768); channels, if several,
    are averaged; ``scipy.signal.resample_poly`` resamples to 8 kHz (16 kHz -> 8 kHz
    is ``up=1, down=2``, a polyphase low-pass and decimation); the result is zero
    padded or truncated to 8,000 samples and stored as ``int16 N, 1, 8000``
    (rounded, clipped). Normalisation is the int16 scale only (1/32768, mean 0,
    std 1); no augmentation.

Cache
    Decoding the 95,000 clips takes a minute or two, so the tensors are saved next to
    the data, ``ROOT/lcam-speechcommands-8k-<key>.pt``, where ``<key>`` hashes the
    label names, the split membership, the sizes of all files and the decoding
    settings: adding, removing or replacing a file or a label folder, or editing a
    list, makes a new cache. A cache that
    cannot be read is rebuilt; a folder that cannot be written only costs the
    speed-up (a warning says so). ``cache=False`` neither reads nor writes it.
"""

from __future__ import annotations

import hashlib
import logging
import math
import warnings
from pathlib import Path

import numpy as np
import torch

from lcam.harness.data.bundle import DataBundle, Normalization, Split
from lcam.harness.data.errors import DatasetCorruptError, DatasetNotFoundError
from lcam.harness.data.tensor_cache import load_tensor_cache, save_tensor_cache

logger = logging.getLogger(__name__)

SAMPLE_RATE = 8_000
CLIP_SAMPLES = 8_000
BACKGROUND_FOLDER = "_background_noise_"
VALIDATION_LIST = "validation_list.txt"
TESTING_LIST = "testing_list.txt"
ARCHIVE_URL = "http://download.tensorflow.org/data/speech_commands_v0.02.tar.gz"
CACHE_FORMAT = 1
_SUBFOLDERS = ("", "speech_commands_v0.02", "SpeechCommands/speech_commands_v0.02")


def how_to_obtain(root: Path) -> str:
    return (
        f"Download {ARCHIVE_URL} and extract it into {root} (the archive unpacks the "
        f"label folders, {VALIDATION_LIST} and {TESTING_LIST} directly)."
    )


EXPECTED_LAYOUT = (
    f"ROOT/<label>/*.wav, ROOT/{VALIDATION_LIST}, ROOT/{TESTING_LIST} "
    "(ROOT may also contain speech_commands_v0.02/ or SpeechCommands/speech_commands_v0.02/)"
)


def find_folder(root: Path) -> Path | None:
    """The folder holding ``testing_list.txt``: ``root`` or a known subfolder."""
    for sub in _SUBFOLDERS:
        if (root / sub / TESTING_LIST).is_file():
            return root / sub
    return None


def decode_clip(path: Path) -> np.ndarray:
    """One clip as ``int16`` at 8 kHz, zero padded or truncated to ``CLIP_SAMPLES``."""
    import soundfile
    from scipy.signal import resample_poly

    try:
        audio, rate = soundfile.read(path, dtype="float64", always_2d=True)
    except (RuntimeError, OSError, ValueError) as error:
        raise DatasetCorruptError(
            f"speechcommands: cannot decode {path} ({error}). {how_to_obtain(path.parent.parent)}"
        ) from error
    mono = audio.mean(axis=1)
    if rate != SAMPLE_RATE:
        common = math.gcd(rate, SAMPLE_RATE)
        mono = resample_poly(mono, SAMPLE_RATE // common, rate // common)
    clip = np.zeros(CLIP_SAMPLES)
    kept = min(len(mono), CLIP_SAMPLES)
    clip[:kept] = mono[:kept]
    return np.clip(np.rint(clip * 32768), -32768, 32767).astype(np.int16)


def _read_list(path: Path, root: Path) -> set[str]:
    if not path.is_file():
        raise DatasetNotFoundError(
            f"speechcommands: missing {path}. Expected layout: {EXPECTED_LAYOUT}. "
            f"{how_to_obtain(root)}"
        )
    return {line.strip() for line in path.read_text().splitlines() if line.strip()}


def _require_audio_packages() -> None:
    try:
        import scipy.signal  # noqa: F401
        import soundfile  # noqa: F401
    except ImportError as error:
        raise ImportError(
            "speechcommands needs soundfile and scipy to decode the clips: "
            "pip install 'lcam[audio]'"
        ) from error


def _decode_all(folder: Path, files: list[str], labels: dict[str, int], what: str) -> Split:
    inputs = torch.empty((len(files), 1, CLIP_SAMPLES), dtype=torch.int16)
    targets = torch.empty(len(files), dtype=torch.int64)
    for i, relative in enumerate(files):
        if i and i % 10_000 == 0:
            logger.info("speechcommands: decoded %d / %d %s clips", i, len(files), what)
        inputs[i, 0] = torch.from_numpy(decode_clip(folder / relative))
        targets[i] = labels[relative.split("/", 1)[0]]
    return Split(inputs, targets)


def _cache_key(folder: Path, names: list[str], train: list[str], test: list[str]) -> str:
    digest = hashlib.sha256(f"{CACHE_FORMAT}:{SAMPLE_RATE}:{CLIP_SAMPLES}\n".encode())
    digest.update(("\t".join(names) + "\n").encode())  # label indices depend on all names
    for split_name, files in (("train", train), ("test", test)):
        for relative in files:
            size = (folder / relative).stat().st_size
            digest.update(f"{split_name}\t{relative}\t{size}\n".encode())
    return digest.hexdigest()[:16]


def cache_path(folder: Path, key: str) -> Path:
    return folder / f"lcam-speechcommands-8k-{key}.pt"


def _load_cache(path: Path, train: int, test: int) -> tuple[Split, Split] | None:
    content = load_tensor_cache(path, "speechcommands")
    if content is None:
        return None
    try:
        splits = (
            Split(content["train_inputs"], content["train_targets"]),
            Split(content["test_inputs"], content["test_targets"]),
        )
    except (KeyError, ValueError) as error:  # incomplete: rebuild it
        warnings.warn(f"speechcommands: ignoring unreadable cache {path} ({error})", stacklevel=2)
        return None
    if (len(splits[0]), len(splits[1])) != (train, test) or any(
        s.inputs.shape[1:] != (1, CLIP_SAMPLES) or s.inputs.dtype != torch.int16 for s in splits
    ):
        warnings.warn(f"speechcommands: ignoring cache {path} with wrong shapes", stacklevel=2)
        return None
    return splits


def _save_cache(path: Path, train: Split, test: Split) -> None:
    content = {
        "format": CACHE_FORMAT,
        "train_inputs": train.inputs,
        "train_targets": train.targets,
        "test_inputs": test.inputs,
        "test_targets": test.targets,
    }
    save_tensor_cache(path, content, "speechcommands", "decodes the clips again")


def load_speechcommands(*, root: Path, seed: int, cache: bool = True) -> DataBundle:
    """Speech Commands v0.02 (35 classes, 1 s at 8 kHz); ``seed`` is unused."""
    folder = find_folder(root)
    if folder is None:
        raise DatasetNotFoundError(
            f"speechcommands: no {TESTING_LIST} under {root}. Expected layout: "
            f"{EXPECTED_LAYOUT}. {how_to_obtain(root)}"
        )
    names = sorted(
        entry.name
        for entry in folder.iterdir()
        if entry.is_dir() and entry.name != BACKGROUND_FOLDER and not entry.name.startswith(".")
    )
    if not names:
        raise DatasetNotFoundError(
            f"speechcommands: no label folders in {folder}. Expected layout: "
            f"{EXPECTED_LAYOUT}. {how_to_obtain(root)}"
        )
    labels = {name: index for index, name in enumerate(names)}
    clips = sorted(
        f"{name}/{path.name}" for name in names for path in (folder / name).glob("*.wav")
    )
    testing = _read_list(folder / TESTING_LIST, root)
    validation = _read_list(folder / VALIDATION_LIST, root)
    present = set(clips)
    for list_name, listed in ((TESTING_LIST, testing), (VALIDATION_LIST, validation)):
        missing = sorted(listed - present)
        if missing:
            raise DatasetCorruptError(
                f"speechcommands: {folder / list_name} names {len(missing)} clip(s) that "
                f"are not in {folder}, e.g. {missing[0]}. {how_to_obtain(root)}"
            )
    train_files = [c for c in clips if c not in testing and c not in validation]
    test_files = [c for c in clips if c in testing]

    path = cache_path(folder, _cache_key(folder, names, train_files, test_files))
    splits = (
        _load_cache(path, len(train_files), len(test_files)) if cache and path.is_file() else None
    )
    if splits is None:
        _require_audio_packages()
        logger.info(
            "speechcommands: decoding %d clips from %s (cached afterwards)",
            len(train_files) + len(test_files),
            folder,
        )
        splits = (
            _decode_all(folder, train_files, labels, "train"),
            _decode_all(folder, test_files, labels, "test"),
        )
        if cache:
            _save_cache(path, *splits)
    train, test = splits
    return DataBundle(
        name="speechcommands",
        train=train,
        test=test,
        num_classes=len(names),
        input_shape=(1, CLIP_SAMPLES),
        kind="audio",
        normalization=Normalization(scale=1 / 32768, mean=(0.0,), std=(1.0,)),
        augment="none",
        class_names=tuple(names),
    )
