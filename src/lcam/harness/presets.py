"""Named presets: the paper's experiments (and the digits demo) as data.

A :class:`Preset` is one protocol (data, model, schedule, hyper-parameters: one
:class:`RunSettings`) and its momentum groups; a run is a preset x group x seed
(:meth:`Preset.run_config`). :class:`CompositePreset` (``table1``) is a list of rows,
each a preset and the groups of that row.

Every protocol value comes from ``docs/PAPER.md`` (what the authors' demo scripts do);
where the paper states nothing, the preset's ``notes`` say what we chose and why.

Groups:

* ``groups`` are what ``lcam sweep PRESET`` runs; ``optional_groups`` are valid for
  ``lcam train`` / ``lcam sweep --groups`` but not run by default (Table 1's groups on
  the Cdlr presets, so that ``table1`` shares runs with ``cdlr-cifar10``).
* Every LCAM group ``g`` has a control: plain SGD with the fixed momentum ``m`` whose
  effective step ``1/(1-m)`` equals ``g``'s mean effective step when a fraction
  ``control_fraction_above`` of the steps use ``momentum_above``
  (:meth:`GroupSpec.control_for`), named after that momentum (``control-m0.933333``).
  Groups with the same matched momentum share one control, trained once.
  ``control=True`` (the digits and MNIST-1D default; ``--control`` on any paper
  preset) adds the controls of the selected LCAM groups to a sweep.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from lcam.harness.config import (
    ConfigError,
    GroupSpec,
    RunConfig,
    RunSettings,
    UnknownNameError,
    apply_overrides,
    parse_value,
)

__all__ = [
    "PRESETS",
    "CompositePreset",
    "Preset",
    "PresetRow",
    "get_preset",
    "get_single_preset",
    "preset_names",
    "show",
]

# Table 1's balanced partner of 0.93: (1 - 0.9)^2 = (1 - 0.93)(1 - b) gives
# b = 0.857142..., which the paper writes (and runs) as 0.857.
TABLE1_LOW = 0.857

# Settings of a preset that are not run settings but decide what a sweep runs.
PRESET_FIELDS: dict[str, type] = {"seeds": int, "control": bool, "control_fraction_above": float}


@dataclass(frozen=True)
class Preset:
    """One protocol and its momentum groups.

    Attributes:
        name: registry name, also the first level of the output directory.
        description: one line for ``lcam presets``.
        settings: every run setting.
        groups: groups that ``lcam sweep`` runs.
        optional_groups: further valid groups, run only when selected.
        seeds: seeds a sweep runs by default (0 .. seeds-1).
        control: add the control of every selected LCAM group to a sweep.
        control_fraction_above: the fraction of steps above the average loss that the
            control's momentum is matched at (see :meth:`GroupSpec.control_for`).
        notes: what the preset assumes beyond docs/PAPER.md.
        option_notes: the preset's data / model options that overrides left out, because
            the ``package.module:function`` that replaced its data or model does not
            accept them (see :func:`lcam.harness.components.fit_reference_options`).
    """

    name: str
    description: str
    settings: RunSettings
    groups: tuple[GroupSpec, ...]
    optional_groups: tuple[GroupSpec, ...] = ()
    seeds: int = 3
    control: bool = False
    control_fraction_above: float = 0.5
    notes: tuple[str, ...] = ()
    option_notes: tuple[str, ...] = dataclasses.field(default=(), compare=False)

    def __post_init__(self) -> None:
        names = [g.name for g in self.groups + self.optional_groups]
        if len(names) != len(set(names)):
            raise ConfigError(f"preset {self.name!r} defines a group twice: {names}")
        if self.seeds < 1:
            raise ConfigError(f"invalid seeds: {self.seeds} (must be >= 1)")
        if not 0.0 <= self.control_fraction_above <= 1.0:
            raise ConfigError(
                f"invalid control_fraction_above: {self.control_fraction_above} (must be in [0, 1])"
            )

    def control_groups(self, groups: Iterable[GroupSpec] | None = None) -> tuple[GroupSpec, ...]:
        """One control per distinct matched momentum of the preset's LCAM groups.

        A control matched by several groups (a pair and its swap at fraction 0.5) lists
        them all in ``matched_to`` and is run once. Its ``matched_to`` always covers every
        defined group (not only the selected ones), so its ``config.json`` is the same
        whichever groups a sweep selects. With ``groups``, only the controls of those
        groups, in order of first appearance.
        """
        controls: dict[str, GroupSpec] = {}
        for group in self.groups + self.optional_groups:
            if group.optimizer != "lcam" or group.schedule_fraction != 1.0:
                continue  # shortened groups are compared with m0.9, not with a control
            control = GroupSpec.control_for(group, fraction_above=self.control_fraction_above)
            known = controls.get(control.name)
            controls[control.name] = control if known is None else known.merged_with(control)
        if groups is None:
            return tuple(controls.values())
        chosen: list[GroupSpec] = []
        for group in groups:
            for control in controls.values():
                assert control.matched_to is not None
                if group.name in control.matched_to and control not in chosen:
                    chosen.append(control)
        return tuple(chosen)

    def valid_groups(self) -> tuple[GroupSpec, ...]:
        """Every group ``lcam train`` accepts: defined groups and their controls."""
        return self.groups + self.optional_groups + self.control_groups()

    def group(self, name: str) -> GroupSpec:
        """The group called ``name``; :class:`UnknownNameError` lists the valid ones."""
        for group in self.valid_groups():
            if group.name == name:
                return group
        raise UnknownNameError(
            "group", name, [g.name for g in self.valid_groups()], f"for preset {self.name!r}"
        )

    def sweep_groups(self, names: Iterable[str] | None = None) -> tuple[GroupSpec, ...]:
        """Groups a sweep runs: ``names`` (default: ``groups``), plus controls if enabled.

        Controls named in ``names`` are kept as given; with ``control`` on, the control
        of every selected LCAM group is appended unless already selected.
        """
        selected = self.groups if names is None else tuple(self.group(n) for n in names)
        if not self.control:
            return selected
        chosen = {g.name for g in selected}
        extra = tuple(g for g in self.control_groups(selected) if g.name not in chosen)
        return selected + extra

    def run_config(self, group: str, seed: int) -> RunConfig:
        """The resolved configuration of one run."""
        spec = self.group(group)
        return RunConfig(preset=self.name, group=spec, seed=seed,
                         settings=self.settings.shortened(spec.schedule_fraction))

    def with_overrides(self, overrides: Mapping[str, str]) -> Preset:
        """This preset with ``key=value`` text overrides of settings or preset fields.

        Keys are :class:`RunSettings` fields (``epochs``, ``lr``, ``model``, ...),
        ``model_options.<key>`` or one of ``seeds``, ``control``,
        ``control_fraction_above``. Unknown keys raise :class:`UnknownNameError`.

        When the data or model is a ``package.module:function``, the preset's own
        options that function does not accept are dropped (``option_notes`` says which);
        options given in ``overrides`` are kept.
        """
        preset_changes: dict[str, Any] = {}
        setting_overrides: dict[str, str] = {}
        for key, raw in overrides.items():
            if key in PRESET_FIELDS:
                preset_changes[key] = parse_value(key, PRESET_FIELDS[key], raw)
            else:
                setting_overrides[key] = raw
        try:
            settings = apply_overrides(self.settings, setting_overrides)
        except UnknownNameError as error:
            if error.kind != "setting":
                raise
            valid = sorted(set(error.valid) | set(PRESET_FIELDS))
            raise UnknownNameError("setting", error.name, valid) from None
        option_notes = self.option_notes
        if ":" in settings.data or ":" in settings.model:  # a package.module:function
            from lcam.harness.components import fit_reference_options

            settings, dropped = fit_reference_options(settings, setting_overrides,
                                                      preset=f"preset {self.name!r}")
            option_notes += tuple(dropped)
        return dataclasses.replace(self, settings=settings, option_notes=option_notes,
                                   **preset_changes)

    def to_json(self) -> dict[str, Any]:
        """The resolved preset, as ``lcam presets --show`` prints it."""
        return {
            "name": self.name,
            "description": self.description,
            "settings": self.settings.to_json(),
            "groups": [g.to_json() for g in self.groups],
            "optional_groups": [g.to_json() for g in self.optional_groups],
            "control": self.control,
            "control_fraction_above": self.control_fraction_above,
            "control_groups": [g.to_json() for g in self.control_groups()],
            "sweep_groups": [g.name for g in self.sweep_groups()],
            "seeds": self.seeds,
            "notes": list(self.notes + self.option_notes),
        }


@dataclass(frozen=True)
class PresetRow:
    """One row of a composite preset: a preset, the groups of that row and, unless
    ``None`` (the preset's own), the number of seeds it runs."""

    preset: str
    groups: tuple[str, ...]
    seeds: int | None = None


@dataclass(frozen=True)
class CompositePreset:
    """A set of presets run together (``table1``); each row keeps its own directory.

    ``lcam sweep table1 --out OUT`` runs row ``r`` as ``lcam sweep r.preset --groups
    r.groups``: its runs land in ``OUT/<r.preset>/<group>/seed<K>``, the same
    directories a sweep of that preset alone uses, so finished runs are shared and
    skipped. Overrides apply to every row.
    """

    name: str
    description: str
    rows: tuple[PresetRow, ...]
    notes: tuple[str, ...] = ()

    def resolved_rows(self, overrides: Mapping[str, str] | None = None) -> list[
        tuple[Preset, tuple[str, ...]]
    ]:
        """Each row's preset (with ``overrides``) and its group names."""
        out = []
        for row in self.rows:
            preset = get_preset(row.preset)
            assert isinstance(preset, Preset)
            if row.seeds is not None:
                preset = dataclasses.replace(preset, seeds=row.seeds)
            out.append((preset.with_overrides(overrides or {}), row.groups))
        return out

    def to_json(self, overrides: Mapping[str, str] | None = None) -> dict[str, Any]:
        return {
            "name": self.name,
            "description": self.description,
            "rows": [
                {"preset": preset.to_json(),
                 "groups": [g.name for g in preset.sweep_groups(groups)]}
                for preset, groups in self.resolved_rows(overrides)
            ],
            "notes": list(self.notes),
        }


def _fixed(momentum: float, role: str = "paper") -> GroupSpec:
    return GroupSpec.fixed(momentum, role=role)  # type: ignore[arg-type]


def _lcam(below: float, above: float, role: str = "paper") -> GroupSpec:
    return GroupSpec.asymmetric(below=below, above=above, role=role)  # type: ignore[arg-type]


# The four groups of Figs. 3 and 4: fixed 0.9, fixed 0.95, 0.95 below / 0.9 above,
# 0.9 below / 0.95 above.
FIGURE_GROUPS = (_fixed(0.9), _fixed(0.95), _lcam(0.95, 0.9), _lcam(0.9, 0.95))
# Table 1 (and the ViT figure): M0.9, M0.857-0.93, M0.93-0.857 in (below, above) order.
TABLE1_GROUPS = (_fixed(0.9), _lcam(TABLE1_LOW, 0.93), _lcam(0.93, TABLE1_LOW))

_WRN_STEP = RunSettings(
    data="cifar10", model="wrn-28-10", epochs=150, batch_size=128, eval_batch_size=500,
    lr=0.1, weight_decay=5e-4, schedule="step", milestones=(31, 61, 91), gamma=0.2,
    decision="lagged",
)
_WRN_CDLR = dataclasses.replace(_WRN_STEP, schedule="cdlr", cdlr_start_epoch=31,
                                cdlr_factor=0.99985)
_VIT = dataclasses.replace(
    _WRN_STEP, model="vit-b16", model_options={"image_size": 224}, epochs=10, lr=1e-4,
    schedule="constant", eval_batch_size=256,
)
_M11 = dataclasses.replace(_WRN_CDLR, data="speechcommands", model="m11")

_VIT_NOTES = (
    "The paper states SGD with lr 1e-4 and no schedule; the epoch count is not stated: "
    "10 epochs is our choice (override with --epochs).",
    "Fine-tuning needs the ImageNet-21k ViT-B/16 weights on disk: "
    "--set model_options.pretrained=/path/to/google-vit-base-patch16-224-in21k "
    "(a Hugging Face checkpoint directory); without it the model starts from scratch.",
    "CIFAR images are resized to model_options.image_size (224) inside the model.",
)
_CDLR_NOTES = (
    "Optional groups m0.857_0.93 and m0.93_0.857 are Table 1's; `lcam sweep table1` "
    "runs them here, sharing the m0.9 runs with this preset.",
)


def _digits() -> Preset:
    return Preset(
        name="digits",
        description="Demo: sklearn digits (real, shipped with scikit-learn), small CNN, "
                    "paper groups + balanced pairs + controls; minutes on a laptop CPU",
        settings=RunSettings(
            data="digits", model="digits-cnn", epochs=30, batch_size=128, eval_batch_size=512,
            lr=0.1, weight_decay=5e-4, schedule="step", milestones=(6, 12, 18), gamma=0.2,
            decision="lagged", augment=False,
        ),
        groups=EVIDENCE_GROUPS,
        seeds=3,
        control=True,
        notes=(
            "Not a paper experiment: the Fig. 3 protocol (lr 0.1, batch 128, weight decay "
            "5e-4, lagged LCAM decision, the four groups) on a task that trains in seconds.",
            "The schedule is Fig. 3's compressed 5x: 150 epochs with x0.2 from epoch "
            "indices 31/61/91 become 30 epochs with x0.2 from 6/12/18.",
            "Fixed momentum 0.9 reaches about 2.5-3% test error (360 test images: one "
            "image is 0.28 points), so group differences are small next to the seed "
            "spread; the report's tests say so.",
            "No augmentation (mirrored or shifted digits change meaning).",
            "Controls are matched at control_fraction_above=0.5, so a pair and its swap "
            "(m0.95_0.9 / m0.9_0.95) share one control (control-m0.933333), trained once.",
        ),
    )


# MNIST-1D: Fig. 3's protocol compressed (x0.2 at 20/40/60% of the epochs, weight decay
# 5e-4, lagged decision, the four figure groups, the balanced pairs, the controls).
# lr, batch size and epochs were chosen once, for fixed momentum 0.9 only, on an
# independent draw of the generator (generator_seed=0), then frozen for every group:
# see `MNIST1D_NOTES` and docs/FINDINGS.md.
MNIST1D_EPOCHS = 60
MNIST1D_SETTINGS = RunSettings(
    data="mnist1d", model="mnist1d-cnn", epochs=MNIST1D_EPOCHS, batch_size=128,
    eval_batch_size=1000, lr=0.15, weight_decay=5e-4, schedule="step",
    milestones=(12, 24, 36), gamma=0.2, decision="lagged", augment=False,
)
EVIDENCE_GROUPS = FIGURE_GROUPS + (
    _lcam(TABLE1_LOW, 0.93, "balanced"), _lcam(0.93, TABLE1_LOW, "balanced"),
)
MNIST1D_NOTES = (
    "Not a paper experiment: Fig. 3's protocol compressed (lr x0.2 from 20/40/60% of "
    "the epochs, weight decay 5e-4, lagged LCAM decision) on MNIST-1D, a published "
    "benchmark that the mnist1d package generates locally (no download).",
    "lr, batch size and epoch count were chosen once for fixed momentum 0.9 on an "
    "independent draw of the generator (data_options.generator_seed=0), never on this "
    "test split, then frozen for every group, as the paper does.",
    "Runs of one seed share initial weights and data order across groups: compare "
    "groups paired by seed.",
)


def _mnist1d_presets() -> list[Preset]:
    return [
        Preset(
            name="mnist1d",
            description="Evidence: MNIST-1D (published 4,000/1,000 split, generated "
                        "locally), reference CNN, figure groups + balanced pairs + controls",
            settings=MNIST1D_SETTINGS,
            groups=EVIDENCE_GROUPS,
            seeds=20,
            control=True,
            notes=MNIST1D_NOTES,
        ),
        Preset(
            name="mnist1d-large",
            description="Evidence: MNIST-1D with 50,000 samples (40,000/10,000), reference "
                        "CNN, same protocol and groups as mnist1d",
            settings=dataclasses.replace(
                MNIST1D_SETTINGS, data_options={"num_samples": 50000}, eval_batch_size=2000,
                epochs=20, milestones=(4, 8, 12),
            ),
            groups=EVIDENCE_GROUPS,
            seeds=8,
            control=True,
            notes=MNIST1D_NOTES + (
                "The same generator with num_samples=50000: one test error is 0.01 points.",
                "20 epochs (x0.2 from epoch indices 4/8/12) instead of 60, to fit the "
                "evidence sweep's budget: 6,260 steps, over three times mnist1d's 1,920.",
            ),
        ),
    ]


# Class sparsity (C2 as the paper states it) and half-length training (C3): three arms
# of 50,000 MNIST-1D signals (40,000 / 10,000) with one protocol, mnist1d-large's (20
# epochs, x0.2 from epoch indices 4/8/12), and one model, the reference CNN widened to
# 64 channels: 25 channels cannot fit 100 classes (fixed 0.9 ends near 41% test error
# with a training loss near 1.0; 64 channels: near 31%, training loss 0.6).
SPARSITY_CHANNELS = 64
HALF = 0.5
HALF_GROUPS = tuple(GroupSpec.shortened(g, HALF) for g in FIGURE_GROUPS)
SPARSITY_LR = {"mnist1d-large-wide": 0.15, "mnist1d-100": 0.15, "mnist1d-100-coarse": 0.15}
"""lr of each arm, chosen for fixed 0.9 only on generator_seed=0 (see SPARSITY_NOTES).

Final test error of m0.9, seed 0, on that draw (docs/HARNESS.md has the command), lr
0.05 / 0.1 / 0.15 / 0.2 / 0.3: 10 classes 2.05 / 1.50 / 1.34 / 1.45 / 2.28; 100 classes
43.38 / 33.34 / 30.16 / 30.80 / 32.40; coarse 30.71 / 27.02 / 25.93 / 26.35 / 28.10. 0.15
is the lowest on each (one training seed: the choice, not a comparison)."""
SPARSITY_NOTES = (
    "Not a paper experiment: the paper's CIFAR-10 / CIFAR-100 contrast (the same images, "
    "ten times the classes) rebuilt from the MNIST-1D generator.",
    "Every arm: 50,000 signals (40,000 / 10,000), mnist1d-large's protocol (20 epochs, "
    "lr x0.2 from epoch indices 4/8/12, batch 128, weight decay 5e-4, lagged decision) "
    "and the reference CNN widened to model_options.channels=64.",
    "The lr of each arm was chosen once, for fixed momentum 0.9 only, on an independent "
    "draw of the generator (data_options.generator_seed=0), then frozen for every group.",
    "Half-length groups (m0.9-half, ...) train 10 epochs with the lr drops at the same "
    "fractions (epoch indices 2/4/6): C3 compares them with m0.9 at full length.",
    "Runs of one seed share initial weights and data order across groups: compare "
    "groups paired by seed.",
)


def _sparsity_arm(name: str, description: str, data_options: dict[str, Any]) -> Preset:
    return Preset(
        name=name,
        description=description,
        settings=dataclasses.replace(
            MNIST1D_SETTINGS, data_options={"num_samples": 50000, **data_options},
            model_options={"channels": SPARSITY_CHANNELS}, eval_batch_size=2000, epochs=20,
            milestones=(4, 8, 12), lr=SPARSITY_LR[name],
        ),
        groups=FIGURE_GROUPS,
        optional_groups=HALF_GROUPS,
        seeds=20,
        control=True,
        notes=SPARSITY_NOTES,
    )


def _sparsity_presets() -> list[Preset]:
    wide = _sparsity_arm(
        "mnist1d-large-wide",
        "Evidence, 10-class arm: mnist1d-large's data (10 digit templates, 50,000 "
        "signals), 64-channel CNN, figure groups + control (+ half-length groups)",
        {},
    )
    arms = [
        wide,
        _sparsity_arm(
            "mnist1d-100",
            "Evidence, 100-class arm: 100 two-digit MNIST-1D templates, 50,000 signals, "
            "64-channel CNN, figure groups + control (+ half-length groups)",
            {"templates": "pairs"},
        ),
        _sparsity_arm(
            "mnist1d-100-coarse",
            "Evidence, coarse arm: mnist1d-100's inputs labelled by the first half's digit "
            "(10 classes), 64-channel CNN, figure groups + control (+ half-length groups)",
            {"templates": "pairs", "labels": "coarse"},
        ),
    ]
    lr_groups = (_fixed(0.9), _lcam(0.95, 0.9), _lcam(0.9, 0.95))
    for factor, label in ((0.5, "x0.5"), (2.0, "x2")):
        arms.append(dataclasses.replace(
            wide,
            name=f"mnist1d-large-wide-lr{label}",
            description=f"Evidence, lr robustness: mnist1d-large-wide at {label} its lr "
                        "(fixed 0.9, one pair and its swap, their control)",
            settings=dataclasses.replace(wide.settings, lr=wide.settings.lr * factor),
            groups=lr_groups,
            optional_groups=(),
            seeds=12,
            notes=SPARSITY_NOTES + (
                f"The lr of mnist1d-large-wide times {factor:g}: does a verdict depend on "
                "the lr the paper froze?",
            ),
        ))
    return arms


def _paper_presets() -> list[Preset]:
    presets = []
    for number, data in ((3, "cifar10"), (4, "cifar100")):
        presets.append(Preset(
            name=f"fig{number}-{data}",
            description=f"Fig. {number}: WRN-28-10 on {data.upper()}, 150 epochs, "
                        "lr 0.1 x0.2 after epochs 30/60/90, four momentum groups",
            settings=dataclasses.replace(_WRN_STEP, data=data),
            groups=FIGURE_GROUPS,
        ))
    presets.append(Preset(
        name="cdlr-cifar10",
        description="Demo 'Figure 5' script: WRN-28-10 on CIFAR-10, Cdlr, fixed 0.9 vs "
                    "0.9 below / 0.95 above",
        settings=_WRN_CDLR,
        groups=(_fixed(0.9), _lcam(0.9, 0.95)),
        optional_groups=TABLE1_GROUPS[1:],
        notes=_CDLR_NOTES,
    ))
    presets.append(Preset(
        name="cdlr-cifar100",
        description="Demo 'Figure 5' script: WRN-28-10 on CIFAR-100, Cdlr, fixed 0.9 vs "
                    "0.93 below / 0.9 above",
        settings=dataclasses.replace(_WRN_CDLR, data="cifar100"),
        groups=(_fixed(0.9), _lcam(0.93, 0.9)),
        optional_groups=TABLE1_GROUPS[1:],
        notes=_CDLR_NOTES,
    ))
    for data in ("cifar10", "cifar100"):
        presets.append(Preset(
            name=f"vit-{data}",
            description=f"Paper Fig. 5 / Table 1: ViT-B/16 (ImageNet-21k) fine-tuned on "
                        f"{data.upper()}, SGD lr 1e-4, groups 0.9 / 0.857-0.93 / 0.93-0.857",
            settings=dataclasses.replace(_VIT, data=data),
            groups=TABLE1_GROUPS,
            notes=_VIT_NOTES,
        ))
    presets.append(Preset(
        name="speechcommands-m11",
        description="Table 1: M11 on Speech Commands, SGD + Cdlr, groups 0.9 / "
                    "0.857-0.93 / 0.93-0.857",
        settings=_M11,
        groups=TABLE1_GROUPS,
        notes=(
            "The paper states only 'SGD + Cdlr' for M11: we use the demo's Cdlr exactly "
            "(lr 0.1, constant, x0.99985 per iteration from epoch index 31, 150 epochs, "
            "batch 128, weight decay 5e-4).",
        ),
    ))
    return presets


def _table1() -> CompositePreset:
    names = tuple(g.name for g in TABLE1_GROUPS)
    return CompositePreset(
        name="table1",
        description="Every run behind Table 1: M11/Speech Commands, WRN-28-10 Cdlr and "
                    "ViT-B/16 on CIFAR-10 and CIFAR-100, groups 0.9 / 0.857-0.93 / 0.93-0.857",
        rows=tuple(PresetRow(name, names) for name in (
            "speechcommands-m11", "cdlr-cifar10", "vit-cifar10", "cdlr-cifar100",
            "vit-cifar100",
        )),
        notes=("Each row runs under its own preset directory (OUT/<preset>/...).",),
    )


def _evidence() -> CompositePreset:
    names = tuple(g.name for g in EVIDENCE_GROUPS)
    return CompositePreset(
        name="evidence",
        description="The first evidence sweep (the earlier data sets of docs/FINDINGS.md): "
                    "digits (20 seeds), mnist1d (20) and mnist1d-large (8), every group "
                    "and the controls",
        rows=(PresetRow("digits", names, seeds=20), PresetRow("mnist1d", names, seeds=20),
              PresetRow("mnist1d-large", names, seeds=8)),
        notes=("Each row runs under its own preset directory (OUT/<preset>/...): "
               "`lcam sweep evidence --out runs/evidence --jobs 2`; its paired "
               "differences are kept in docs/findings/evidence1-summary.json, which "
               "`python scripts/refresh_findings.py` re-evaluates.",
               "digits runs 20 seeds here; `lcam demo` runs 3 of them (the same runs)."),
    )


SPARSITY_ARMS = ("mnist1d-large-wide", "mnist1d-100", "mnist1d-100-coarse")


def _evidence_sparsity() -> CompositePreset:
    names = tuple(g.name for g in FIGURE_GROUPS)
    return CompositePreset(
        name="evidence-sparsity",
        description="C2 as stated: the figure groups and their control on 10, 100 and "
                    "10 coarse classes of MNIST-1D (20 seeds each)",
        rows=tuple(PresetRow(arm, names) for arm in SPARSITY_ARMS),
        notes=("`lcam sweep evidence-sparsity --out runs/evidence2 --jobs 2`, then "
               "`lcam sweep evidence-schedule --out runs/evidence2 --jobs 2` and "
               "`python scripts/refresh_findings.py runs/evidence2`.",),
    )


def _evidence_schedule() -> CompositePreset:
    half = ("m0.9",) + tuple(g.name for g in HALF_GROUPS)
    lr_names = ("m0.9", "m0.95_0.9", "m0.9_0.95")
    return CompositePreset(
        name="evidence-schedule",
        description="C3 as stated: half-length groups against fixed 0.9 at full length on "
                    "the three sparsity arms; C1/C4 at 0.5x and 2x the lr",
        rows=tuple(PresetRow(arm, half) for arm in SPARSITY_ARMS) + (
            PresetRow("mnist1d-large-wide-lrx0.5", lr_names),
            PresetRow("mnist1d-large-wide-lrx2", lr_names),
        ),
        notes=("m0.9 at full length is shared with evidence-sparsity when both sweep into "
               "the same directory (finished runs are skipped).",),
    )


_ALL: list[Preset | CompositePreset] = [
    _digits(), *_mnist1d_presets(), *_paper_presets(), *_sparsity_presets(), _table1(),
    _evidence(), _evidence_sparsity(), _evidence_schedule(),
]
PRESETS: dict[str, Preset | CompositePreset] = {preset.name: preset for preset in _ALL}


def preset_names() -> tuple[str, ...]:
    """Every registered preset name, in listing order."""
    return tuple(PRESETS)


def get_preset(name: str) -> Preset | CompositePreset:
    """The preset called ``name``; :class:`UnknownNameError` lists the valid ones."""
    try:
        return PRESETS[name]
    except KeyError:
        raise UnknownNameError("preset", name, preset_names()) from None


def get_single_preset(name: str) -> Preset:
    """Like :func:`get_preset`, but a composite preset is an error (it has no groups)."""
    preset = get_preset(name)
    if isinstance(preset, CompositePreset):
        rows = ", ".join(row.preset for row in preset.rows)
        raise ConfigError(
            f"preset {name!r} is a composite of {rows}: train one of those presets "
            f"(`lcam sweep {name}` runs them all)"
        )
    return preset


def show(name: str, overrides: Mapping[str, str] | None = None) -> str:
    """The resolved preset ``name`` (with ``overrides``) as indented JSON."""
    preset = get_preset(name)
    if isinstance(preset, CompositePreset):
        return json.dumps(preset.to_json(overrides), indent=2)
    return json.dumps(preset.with_overrides(overrides or {}).to_json(), indent=2)
