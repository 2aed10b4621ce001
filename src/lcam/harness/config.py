"""What one training run is, as frozen data: momentum groups, settings, overrides.

A run is fully described by a :class:`RunConfig`: the preset it belongs to, its
momentum :class:`GroupSpec`, its seed and its :class:`RunSettings` (data, model,
schedule, optimiser hyper-parameters, device options). ``RunConfig.to_json()`` is the
``config.json`` that every run directory starts with (see ``docs/ARCHITECTURE.md``).

Overrides arrive as text (``epochs=1``, ``milestones=31,61,91``) from the command line;
:func:`apply_overrides` parses each value with the field's declared type and rejects
unknown keys with the list of valid ones, so a typo never silently runs the default.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, Union, get_args, get_origin

__all__ = [
    "AMP_MODES",
    "BATCH_NORM_MODES",
    "DECISIONS",
    "RUNTIME_FIELDS",
    "SCHEDULES",
    "ConfigError",
    "GroupSpec",
    "RunConfig",
    "RunSettings",
    "UnknownNameError",
    "apply_overrides",
    "format_momentum",
    "settings_fields",
]

OptimizerName = Literal["sgd", "lcam"]
Role = Literal["paper", "control", "balanced"]
ScheduleName = Literal["step", "cdlr", "cosine", "constant"]
Decision = Literal["current", "lagged"]
LossAverage = Literal["epoch", "ema"]
AmpMode = Literal["none", "bf16"]
BatchNormMode = Literal["plain", "sync"]

SCHEDULES: tuple[str, ...] = get_args(ScheduleName)
DECISIONS: tuple[str, ...] = get_args(Decision)
AMP_MODES: tuple[str, ...] = get_args(AmpMode)
BATCH_NORM_MODES: tuple[str, ...] = get_args(BatchNormMode)


class ConfigError(ValueError):
    """A configuration value or combination that cannot be run."""


class UnknownNameError(ConfigError):
    """A preset, group, model, data set or setting name that does not exist.

    The message lists the valid names, e.g.
    ``unknown group 'm0.95_09' for preset 'digits'; valid groups: m0.9, m0.95, ...``.
    """

    def __init__(self, kind: str, name: str, valid: Iterable[str], context: str = "") -> None:
        self.kind = kind
        self.name = name
        self.valid = tuple(valid)
        where = f" {context}" if context else ""
        super().__init__(f"unknown {kind} {name!r}{where}; valid {kind}s: {', '.join(self.valid)}")


def format_momentum(value: float) -> str:
    """Momentum as it appears in group names: ``0.9``, ``0.95``, ``0.857``."""
    return f"{value:g}"


@dataclass(frozen=True)
class GroupSpec:
    """One momentum group: plain SGD with a fixed momentum, or LCAM with two values.

    Attributes:
        name: ``m0.9`` (fixed), ``m0.95_0.9`` (LCAM: 0.95 while the loss is below its
            average, 0.9 while above) or ``control-m0.933333`` (the fixed momentum
            0.933333, matched to the effective step of one or more LCAM groups).
        optimizer: ``"sgd"`` (``torch.optim.SGD``) or ``"lcam"`` (``lcam.LCAM``).
        momentum: the fixed momentum of an SGD group, else ``None``.
        momentum_above / momentum_below: the two momenta of an LCAM group, else ``None``.
        role: ``"paper"`` (a group the paper ran), ``"balanced"`` (a pair keeping
            ``(1-0.9)^2 = (1-a)(1-b)`` added beside the paper's groups) or ``"control"``.
        matched_to: for a control group, the LCAM groups it is matched to (every
            group whose matched momentum is this one: a pair and its swap share one
            control when the matching fraction is 0.5).
        schedule_fraction: ``1.0`` (the preset's schedule), or the fraction of it that
            the group trains for: a shortened group (:meth:`shortened`, named
            ``m0.9-half`` for 0.5) runs ``round(epochs * f)`` epochs with the
            schedule's epoch indices (``milestones``, ``cdlr_start_epoch``) scaled by
            the same ``f`` (:meth:`RunSettings.shortened`), so its lr drops at the same
            fractions of its training. ``config.json`` lists the field only when it is
            not 1.
    """

    name: str
    optimizer: OptimizerName
    momentum: float | None = None
    momentum_above: float | None = None
    momentum_below: float | None = None
    role: Role = "paper"
    matched_to: tuple[str, ...] | None = None
    schedule_fraction: float = 1.0

    def __post_init__(self) -> None:
        if not 0.0 < self.schedule_fraction <= 1.0:
            raise ConfigError(f"group {self.name!r}: schedule_fraction {self.schedule_fraction} "
                              "is not in (0, 1]")
        if self.schedule_fraction != 1.0 and self.role == "control":
            raise ConfigError(f"group {self.name!r}: a control group runs the full schedule")
        if isinstance(self.matched_to, str):
            raise ConfigError(f"group {self.name!r}: matched_to is a tuple of group names")
        if self.matched_to is not None:
            object.__setattr__(self, "matched_to", tuple(self.matched_to))
        if self.optimizer == "sgd":
            if self.momentum is None or self.momentum_above is not None:
                raise ConfigError(f"group {self.name!r}: an SGD group has exactly one momentum")
            values = [self.momentum]
        elif self.optimizer == "lcam":
            if self.momentum_above is None or self.momentum_below is None:
                raise ConfigError(
                    f"group {self.name!r}: an LCAM group needs momentum_above and momentum_below"
                )
            if self.momentum is not None:
                raise ConfigError(f"group {self.name!r}: an LCAM group has no fixed momentum")
            values = [self.momentum_above, self.momentum_below]
        else:
            raise ConfigError(f"group {self.name!r}: invalid optimizer {self.optimizer!r}")
        for value in values:
            if not 0.0 <= value < 1.0:
                raise ConfigError(f"group {self.name!r}: momentum {value} is not in [0, 1)")
        if (self.role == "control") != bool(self.matched_to):
            raise ConfigError(f"group {self.name!r}: a control group (and only one) has matched_to")

    @classmethod
    def fixed(cls, momentum: float, *, role: Role = "paper") -> GroupSpec:
        """Plain SGD with ``momentum``, named ``m<momentum>``."""
        return cls(name=f"m{format_momentum(momentum)}", optimizer="sgd", momentum=momentum,
                   role=role)

    @classmethod
    def asymmetric(cls, *, below: float, above: float, role: Role = "paper") -> GroupSpec:
        """LCAM: ``below`` under the average loss, ``above`` otherwise; ``m<below>_<above>``."""
        name = f"m{format_momentum(below)}_{format_momentum(above)}"
        return cls(name=name, optimizer="lcam", momentum_above=above, momentum_below=below,
                   role=role)

    @classmethod
    def control_for(cls, group: GroupSpec, *, fraction_above: float) -> GroupSpec:
        """Plain SGD whose fixed momentum has the LCAM ``group``'s mean effective step.

        The effective step of momentum SGD is ``lr / (1 - m)``. A group that uses
        ``momentum_above`` on a fraction ``f`` of its steps has the mean effective step
        ``f / (1 - m_above) + (1 - f) / (1 - m_below)`` (in units of lr); the control's
        momentum is the ``m`` with ``1 / (1 - m)`` equal to it
        (:func:`lcam.matched_momentum`). ``f`` is fixed before training (the preset's
        ``control_fraction_above``, 0.5 unless overridden), so the control is a
        reproducible run of its own; the report shows the measured fraction beside it.

        The control is named after its momentum (``control-m0.933333``), so groups
        with the same matched momentum get the same control; :meth:`merged_with`
        joins their ``matched_to``.
        """
        if group.optimizer != "lcam":
            raise ConfigError(f"a control group matches an LCAM group, not {group.name!r}")
        from lcam import matched_momentum

        assert group.momentum_above is not None and group.momentum_below is not None
        momentum = matched_momentum(
            group.momentum_above, group.momentum_below, fraction_above=fraction_above
        )
        return cls(name=f"control-m{format_momentum(momentum)}", optimizer="sgd",
                   momentum=float(momentum), role="control", matched_to=(group.name,))

    @classmethod
    def shortened(cls, group: GroupSpec, fraction: float) -> GroupSpec:
        """``group`` trained for ``fraction`` of the schedule: ``<name>-half`` for 0.5,
        else ``<name>-f<fraction>``."""
        if group.schedule_fraction != 1.0:
            raise ConfigError(f"group {group.name!r} is already shortened")
        suffix = "half" if fraction == 0.5 else f"f{format_momentum(fraction)}"
        return dataclasses.replace(group, name=f"{group.name}-{suffix}",
                                   schedule_fraction=float(fraction))

    def merged_with(self, other: GroupSpec) -> GroupSpec:
        """This control, also matched to ``other``'s LCAM groups (same name and momentum)."""
        if self.role != "control" or other.role != "control" or (
            (self.name, self.momentum) != (other.name, other.momentum)
        ):
            raise ConfigError(
                f"cannot merge group {other.name!r} (momentum {other.momentum}) into "
                f"{self.name!r} (momentum {self.momentum}): only one control per momentum"
            )
        assert self.matched_to is not None and other.matched_to is not None
        extra = tuple(n for n in other.matched_to if n not in self.matched_to)
        return dataclasses.replace(self, matched_to=self.matched_to + extra)

    def to_json(self) -> dict[str, Any]:
        """The ``group`` object of ``config.json`` (``matched_to`` as a list)."""
        out = dataclasses.asdict(self)
        out["matched_to"] = list(self.matched_to) if self.matched_to is not None else None
        if self.schedule_fraction == 1.0:  # full-length groups keep their old config.json
            del out["schedule_fraction"]
        return out


@dataclass(frozen=True)
class RunSettings:
    """Every setting of a run except its group and seed; a preset fixes all of them.

    Experiment settings (they decide the numbers a run produces):

    Attributes:
        data: data set name (``digits``, ``cifar10``, ``cifar100``, ``speechcommands``,
            ``synthetic-cifar``) or ``package.module:function`` returning a
            :class:`~lcam.harness.data.DataBundle`.
        data_options: extra keyword arguments for the data loader, e.g.
            ``{"train_size": 512}`` for ``synthetic-cifar``.
        train_subset / test_subset: keep at most this many samples (seeded choice);
            ``None`` keeps all. For smoke runs.
        model: model name (``wrn-28-10``, ``m11``, ``vit-b16``, ``vit-tiny``,
            ``digits-cnn``) or ``package.module:function`` returning an ``nn.Module``.
        model_options: extra keyword arguments for the model builder, e.g.
            ``{"pretrained": "/path/to/vit", "image_size": 224}``.
        epochs: number of epochs.
        batch_size: global mini-batch size of training.
        eval_batch_size: mini-batch size of evaluation (no effect on the numbers).
        lr: initial learning rate.
        weight_decay: L2 weight decay added to the gradient (as ``torch.optim.SGD``).
        schedule: ``step``, ``cdlr``, ``cosine`` or ``constant`` (see ``schedules.py``).
        milestones / gamma: ``step``: the lr is multiplied by ``gamma`` from each epoch
            index in ``milestones`` on (0-based; ``31`` = the 32nd epoch).
        cdlr_start_epoch / cdlr_factor: ``cdlr``: constant lr, then multiplied by
            ``cdlr_factor`` before every iteration from epoch index ``cdlr_start_epoch``.
        decision / loss_average: passed to ``lcam.LCAM`` (LCAM groups only).
        augment: apply the data set's training augmentation.
        amp: ``bf16`` runs forward passes under bf16 autocast (CUDA); ``none`` is fp32.
        channels_last: use the channels-last memory format for 4-D models and inputs.
        batch_norm: BatchNorm across data-parallel ranks (``torchrun``, see
            ``docs/SCALE_OUT.md``): ``plain`` normalises each rank's ``batch_size /
            world_size`` samples with their own statistics (DDP's default; the running
            statistics are rank 0's); ``sync`` converts BatchNorm layers to
            ``torch.nn.SyncBatchNorm``, which normalises with the statistics of the whole
            global batch (CUDA only). No effect in a single process.

    Runtime settings (where and how it runs; they may change between a run and its
    resumption, see :data:`RUNTIME_FIELDS`):

    Attributes:
        data_root: directory holding the data set files (``None``: the default place).
        device: ``auto`` (CUDA when available, else CPU), ``cpu``, ``cuda``, ``cuda:1``...
        threads: CPU threads for torch (``None``: torch's default).
        tensorboard: also write TensorBoard event files into the run directory.
    """

    data: str = "digits"
    data_options: Mapping[str, Any] = field(default_factory=dict, hash=False)
    train_subset: int | None = None
    test_subset: int | None = None
    model: str = "digits-cnn"
    model_options: Mapping[str, Any] = field(default_factory=dict, hash=False)
    epochs: int = 30
    batch_size: int = 128
    eval_batch_size: int = 500
    lr: float = 0.1
    weight_decay: float = 5e-4
    schedule: ScheduleName = "step"
    milestones: tuple[int, ...] = (31, 61, 91)
    gamma: float = 0.2
    cdlr_start_epoch: int = 31
    cdlr_factor: float = 0.99985
    decision: Decision = "lagged"
    loss_average: LossAverage = "epoch"
    augment: bool = True
    amp: AmpMode = "none"
    channels_last: bool = False
    batch_norm: BatchNormMode = "plain"
    data_root: str | None = None
    device: str = "auto"
    threads: int | None = None
    tensorboard: bool = False

    def __post_init__(self) -> None:
        positive = {"epochs": self.epochs, "batch_size": self.batch_size,
                    "eval_batch_size": self.eval_batch_size}
        for name, value in positive.items():
            if value < 1:
                raise ConfigError(f"invalid {name}: {value} (must be >= 1)")
        for name, subset in (("train_subset", self.train_subset),
                             ("test_subset", self.test_subset), ("threads", self.threads)):
            if subset is not None and subset < 1:
                raise ConfigError(f"invalid {name}: {subset} (must be >= 1 or none)")
        if not self.lr > 0:
            raise ConfigError(f"invalid lr: {self.lr} (must be > 0)")
        if self.weight_decay < 0:
            raise ConfigError(f"invalid weight_decay: {self.weight_decay} (must be >= 0)")
        if not 0 < self.gamma <= 1 or not 0 < self.cdlr_factor <= 1:
            raise ConfigError("invalid gamma / cdlr_factor (each must be in (0, 1])")
        if list(self.milestones) != sorted(set(self.milestones)) or any(
            m < 1 for m in self.milestones
        ):
            raise ConfigError(
                f"invalid milestones: {self.milestones} (increasing epoch indices >= 1)"
            )
        if self.cdlr_start_epoch < 0:
            raise ConfigError(f"invalid cdlr_start_epoch: {self.cdlr_start_epoch} (must be >= 0)")
        choices: tuple[tuple[str, str, tuple[str, ...]], ...] = (
            ("schedule", self.schedule, SCHEDULES),
            ("decision", self.decision, DECISIONS),
            ("loss_average", self.loss_average, ("epoch", "ema")),
            ("amp", self.amp, AMP_MODES),
            ("batch_norm", self.batch_norm, BATCH_NORM_MODES),
        )
        for setting, choice, valid in choices:
            if choice not in valid:
                raise UnknownNameError(setting, str(choice), valid)
        # Plain dict copies keep the settings independent of the caller's mappings.
        object.__setattr__(self, "data_options", dict(self.data_options))
        object.__setattr__(self, "model_options", dict(self.model_options))

    def shortened(self, fraction: float) -> RunSettings:
        """These settings for a run of ``fraction`` of the schedule: ``round(epochs * f)``
        epochs (at least 1), every milestone and ``cdlr_start_epoch`` scaled by ``f``
        and rounded (milestones that coincide after rounding merge; none below 1)."""
        if fraction == 1.0:
            return self
        if not 0.0 < fraction < 1.0:
            raise ConfigError(f"invalid schedule fraction {fraction} (must be in (0, 1])")
        milestones = tuple(sorted({max(1, round(m * fraction)) for m in self.milestones}))
        return dataclasses.replace(
            self, epochs=max(1, round(self.epochs * fraction)), milestones=milestones,
            cdlr_start_epoch=round(self.cdlr_start_epoch * fraction),
        )

    def to_json(self) -> dict[str, Any]:
        """Every setting as JSON-compatible values (tuples become lists)."""
        out = dataclasses.asdict(self)
        out["milestones"] = list(self.milestones)
        out["data_options"] = dict(self.data_options)
        out["model_options"] = dict(self.model_options)
        return out


# Settings that say where and how a run executes, not what it computes: a run may be
# resumed with different values (another data directory, GPU instead of CPU).
RUNTIME_FIELDS: frozenset[str] = frozenset({"data_root", "device", "threads", "tensorboard"})


@dataclass(frozen=True)
class RunConfig:
    """One training run: preset x group x seed, with every setting resolved."""

    preset: str
    group: GroupSpec
    seed: int
    settings: RunSettings

    def __post_init__(self) -> None:
        if self.seed < 0:
            raise ConfigError(f"invalid seed: {self.seed} (must be >= 0)")

    def to_json(self) -> dict[str, Any]:
        """The contract part of ``config.json`` (without versions and git commit)."""
        return {
            "preset": self.preset,
            "group": self.group.to_json(),
            "seed": self.seed,
            "epochs": self.settings.epochs,
            "data": self.settings.data,
            "model": self.settings.model,
            "schedule": self.settings.schedule,
            "config": self.settings.to_json(),
        }

    def experiment_json(self) -> dict[str, Any]:
        """:meth:`to_json` without the runtime settings: what must match to resume."""
        out = self.to_json()
        out["config"] = {k: v for k, v in out["config"].items() if k not in RUNTIME_FIELDS}
        return out


def settings_fields() -> dict[str, Any]:
    """Name -> declared type of every :class:`RunSettings` field."""
    hints = typing.get_type_hints(RunSettings)
    return {f.name: hints[f.name] for f in dataclasses.fields(RunSettings)}


def apply_overrides(settings: RunSettings, overrides: Mapping[str, str]) -> RunSettings:
    """Return ``settings`` with each ``key=value`` text override parsed and applied.

    Keys are :class:`RunSettings` field names; ``model_options.<key>`` and
    ``data_options.<key>`` set one option of the model or data loader (the value is
    parsed as JSON when possible, else kept as text). ``none``/``null``
    clears an optional field; booleans accept true/false/yes/no/1/0; tuples take
    comma-separated values. Raises :class:`UnknownNameError` for an unknown key and
    :class:`ConfigError` for a value of the wrong type.
    """
    types_by_name = settings_fields()
    changes: dict[str, Any] = {}
    options = {"model_options": dict(settings.model_options),
               "data_options": dict(settings.data_options)}
    for key, raw in overrides.items():
        group, _, option = key.partition(".")
        if group in options and option:
            options[group][option] = _parse_loose(raw)
            changes[group] = options[group]
            continue
        if key not in types_by_name or key in options:
            valid = sorted(set(types_by_name) - set(options))
            raise UnknownNameError("setting", key, valid + [f"{g}.<key>" for g in options])
        changes[key] = parse_value(key, types_by_name[key], raw)
    return dataclasses.replace(settings, **changes)


_TRUE = {"true", "yes", "1", "on"}
_FALSE = {"false", "no", "0", "off"}
_NONE = {"none", "null", ""}


def parse_value(key: str, kind: Any, raw: str) -> Any:
    """Parse the text ``raw`` as a value of the type ``kind`` (for setting ``key``)."""
    origin = get_origin(kind)
    args = get_args(kind)
    if origin in (Union, types.UnionType):
        inner = [a for a in args if a is not type(None)]
        if raw.strip().lower() in _NONE:
            return None
        return parse_value(key, inner[0], raw)
    if origin is Literal:
        if raw not in args:
            raise UnknownNameError(f"{key} value", raw, [str(a) for a in args])
        return raw
    if origin is tuple:
        return tuple(parse_value(key, args[0], part) for part in raw.split(",") if part.strip())
    if kind is bool:
        text = raw.strip().lower()
        if text in _TRUE or text in _FALSE:
            return text in _TRUE
        raise ConfigError(f"invalid {key}: {raw!r} (expected true or false)")
    if kind in (int, float, str):
        try:
            return kind(raw)
        except ValueError:
            raise ConfigError(f"invalid {key}: {raw!r} (expected {kind.__name__})") from None
    raise ConfigError(f"setting {key} cannot be set from the command line")


def _parse_loose(raw: str) -> Any:
    """A model option's value: JSON when it parses (``224``, ``true``), else the text."""
    import json

    try:
        return json.loads(raw)
    except json.JSONDecodeError:
        return raw
