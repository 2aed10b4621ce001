"""Speech Commands loading from a tiny v0.02 folder tree of real WAV files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile
import torch

from lcam.harness.data import DatasetCorruptError, DatasetNotFoundError, load_data
from lcam.harness.data import speechcommands as sc

RATE = 16_000
# label -> clip lengths at 16 kHz (short, exact and over-long clips)
CLIPS = {"yes": (16_000, 12_000, 17_000), "no": (16_000, 8_000), "up": (16_000, 16_000, 4_000)}
TESTING = ["no/speaker1_nohash_0.wav", "yes/speaker0_nohash_1.wav"]
VALIDATION = ["up/speaker2_nohash_0.wav"]


def tone(frequency: float, samples: int, rate: int = RATE) -> np.ndarray:
    t = np.arange(samples) / rate
    return np.rint(8000 * np.sin(2 * np.pi * frequency * t)).astype(np.int16)


def write_tree(root: Path) -> dict[str, np.ndarray]:
    """A Speech Commands folder: 3 labels, background noise, the two list files."""
    written: dict[str, np.ndarray] = {}
    for speaker, (label, lengths) in enumerate(CLIPS.items()):
        (root / label).mkdir(parents=True)
        for n, length in enumerate(lengths):
            relative = f"{label}/speaker{speaker}_nohash_{n}.wav"
            audio = tone(100.0 * (speaker + 1) + 10 * n, length)
            soundfile.write(root / relative, audio, RATE, subtype="PCM_16")
            written[relative] = audio
    (root / "_background_noise_").mkdir()
    soundfile.write(root / "_background_noise_" / "white_noise.wav", tone(50, 32_000), RATE)
    (root / "testing_list.txt").write_text("\n".join(TESTING) + "\n")
    (root / "validation_list.txt").write_text("\n".join(VALIDATION) + "\n")
    (root / "README.md").write_text("not a label")
    return written


def test_splits_follow_the_list_files_and_labels_are_sorted_folders(tmp_path: Path) -> None:
    write_tree(tmp_path)
    bundle = load_data("speechcommands", root=tmp_path)

    assert bundle.class_names == ("no", "up", "yes")
    assert bundle.num_classes == 3
    # train: all clips except testing and validation ones, in sorted path order
    train_files = sorted(
        f"{label}/speaker{s}_nohash_{n}.wav"
        for s, (label, lengths) in enumerate(CLIPS.items())
        for n in range(len(lengths))
    )
    train_files = [f for f in train_files if f not in TESTING and f not in VALIDATION]
    names = bundle.class_names
    expected_train = [names.index(f.split("/")[0]) for f in train_files]
    assert bundle.train.targets.tolist() == expected_train
    assert bundle.test.targets.tolist() == [names.index("no"), names.index("yes")]
    assert len(bundle.train) == 8 - len(TESTING) - len(VALIDATION)


def test_clips_are_int16_resampled_to_8khz_and_padded_to_8000(tmp_path: Path) -> None:
    written = write_tree(tmp_path)
    bundle = load_data("speechcommands", root=tmp_path)

    assert bundle.train.inputs.dtype == torch.int16
    assert bundle.train.inputs.shape == (len(bundle.train), 1, 8000)
    assert bundle.input_shape == (1, 8000) and bundle.kind == "audio" and bundle.augment == "none"
    # test[1] is yes/speaker0_nohash_1.wav: 12,000 samples at 16 kHz -> 6,000 at 8 kHz
    clip = bundle.test.inputs[1, 0].numpy().astype(np.float64)
    assert np.all(clip[6000:] == 0)
    # resampling a 110 Hz tone keeps it: compare with the tone sampled at 8 kHz directly
    direct = tone(110.0, 6000, rate=8000).astype(np.float64)
    middle = slice(200, 5800)  # away from the filter's edge effects
    assert np.max(np.abs(clip[middle] - direct[middle])) < 0.01 * 8000
    # equals the documented pipeline exactly
    from scipy.signal import resample_poly

    source = written["yes/speaker0_nohash_1.wav"] / 32768
    expected = np.zeros(8000)
    expected[:6000] = resample_poly(source, 1, 2)
    assert np.array_equal(clip, np.clip(np.rint(expected * 32768), -32768, 32767))


def test_over_long_clip_is_truncated(tmp_path: Path) -> None:
    write_tree(tmp_path)
    bundle = load_data("speechcommands", root=tmp_path)
    # train, sorted: no/..._1 (8,000 samples -> 4,000), up/..._1, up/..._2, yes/..._0,
    # yes/..._2 (17,000 -> 8,500, cut to 8,000)
    assert np.all(bundle.train.inputs[0, 0, 4000:].numpy() == 0)
    assert bundle.train.inputs[-1, 0, 7990:].abs().max() > 0


def test_normalisation_is_the_int16_scale(tmp_path: Path) -> None:
    write_tree(tmp_path)
    norm = load_data("speechcommands", root=tmp_path).normalization
    assert (norm.scale, norm.mean, norm.std) == (1 / 32768, (0.0,), (1.0,))


def test_second_load_reads_the_cache_instead_of_decoding(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_tree(tmp_path)
    first = load_data("speechcommands", root=tmp_path)
    caches = list(tmp_path.glob("lcam-speechcommands-8k-*.pt"))
    assert len(caches) == 1

    def fail(path: Path) -> np.ndarray:
        raise AssertionError(f"decoded {path} although a cache exists")

    monkeypatch.setattr(sc, "decode_clip", fail)
    second = load_data("speechcommands", root=tmp_path)
    assert torch.equal(first.train.inputs, second.train.inputs)
    assert torch.equal(first.test.targets, second.test.targets)


def test_changing_a_list_file_invalidates_the_cache(tmp_path: Path) -> None:
    write_tree(tmp_path)
    load_data("speechcommands", root=tmp_path)
    (tmp_path / "testing_list.txt").write_text(TESTING[0] + "\n")
    bundle = load_data("speechcommands", root=tmp_path)
    assert len(bundle.test) == 1
    assert len(list(tmp_path.glob("lcam-speechcommands-8k-*.pt"))) == 2


def test_unreadable_cache_is_rebuilt(tmp_path: Path) -> None:
    write_tree(tmp_path)
    first = load_data("speechcommands", root=tmp_path)
    (cache,) = tmp_path.glob("lcam-speechcommands-8k-*.pt")
    cache.write_bytes(b"garbage")
    with pytest.warns(UserWarning, match="unreadable cache"):
        second = load_data("speechcommands", root=tmp_path)
    assert torch.equal(first.train.inputs, second.train.inputs)


def test_cache_false_writes_nothing(tmp_path: Path) -> None:
    write_tree(tmp_path)
    load_data("speechcommands", root=tmp_path, cache=False)
    assert not list(tmp_path.glob("*.pt"))


def test_root_may_be_the_parent_folder(tmp_path: Path) -> None:
    write_tree(tmp_path / "speech_commands_v0.02")
    assert len(load_data("speechcommands", root=tmp_path).test) == len(TESTING)


def test_missing_data_names_path_layout_and_download(tmp_path: Path) -> None:
    with pytest.raises(DatasetNotFoundError) as info:
        load_data("speechcommands", root=tmp_path)
    message = str(info.value)
    assert str(tmp_path) in message and "testing_list.txt" in message
    assert "speech_commands_v0.02.tar.gz" in message


def test_list_naming_a_missing_clip_is_corrupt(tmp_path: Path) -> None:
    write_tree(tmp_path)
    (tmp_path / "up" / "speaker2_nohash_0.wav").unlink()
    with pytest.raises(DatasetCorruptError, match=r"validation_list.txt.*up/speaker2_nohash_0.wav"):
        load_data("speechcommands", root=tmp_path)


def test_undecodable_wav_is_corrupt_and_named(tmp_path: Path) -> None:
    write_tree(tmp_path)
    (tmp_path / "yes" / "speaker0_nohash_0.wav").write_bytes(b"RIFF not really a wav")
    with pytest.raises(DatasetCorruptError, match="yes/speaker0_nohash_0.wav"):
        load_data("speechcommands", root=tmp_path)


def test_new_label_folder_invalidates_the_cache(tmp_path: Path) -> None:
    write_tree(tmp_path)
    first = load_data("speechcommands", root=tmp_path)
    (tmp_path / "bed").mkdir()  # sorts first: every label index shifts by one
    second = load_data("speechcommands", root=tmp_path)
    assert second.class_names == ("bed", "no", "up", "yes")
    assert torch.equal(second.train.targets, first.train.targets + 1)
