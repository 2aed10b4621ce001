"""Figures per preset (matplotlib, PNG and SVG), in the layout of the paper's Fig. 3/4.

For each preset ``P`` the report writes into ``figures/``:

- ``P_curves``: test error (left) and train loss (right) against epoch,
  one line per momentum group, one legend below: the paper's Fig. 3/4 layout, meant
  for the demo and findings pages;
- ``P_test_error`` and ``P_train_loss``: the same two panels on their own;
- ``P_lr``: learning rate against epoch;
- ``P_fraction_above``: the fraction of steps that used ``momentum_above`` (loss at or
  above its running average) against epoch, LCAM groups only.

Groups trained on a shortened schedule (``m0.9-half``: half the epochs, the lr
milestones at the same fractions) are kept out of these figures, whose lines would
otherwise end at different epochs; when a preset has any, ``P_shortened`` draws them
(test error and train loss) beside the fixed-0.9 group at full length, the reference
of claim C3.

Each line is the mean over the group's finished seeds; the shaded band spans the
minimum to the maximum over those seeds (no band with one seed). Every group is drawn
once, with one legend entry: fixed-momentum and LCAM groups solid, each in a colour of
its own; a control dashed in the colour of the first of its LCAM groups, labelled with
its momentum and the LCAM groups it is matched to (``control 0.933 (m0.95_0.9,
m0.9_0.95, n=3)``). Partial runs are drawn as thin dotted lines in their group's colour
and are not part of the mean. On the test error panels a grey dashed line marks the
fixed-0.9 group's final mean error, the target of the epochs-to-target column, and the
y-axis lets the first 10% of epochs run off the top when they would squash the rest.
Train loss and learning rate use a log scale when their values are positive and span
more than a factor of ten. Epochs are counted from 1 (the value after the first
finished epoch is plotted at 1).

Figures are drawn on `matplotlib.figure.Figure` objects with the non-interactive Agg
canvas; pyplot and its global state are never touched, so building a report inside
another program changes nothing there. SVGs are written without a date and with a fixed
hash salt, so the same runs give the same files.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import matplotlib
import numpy as np
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.ticker import MaxNLocator

from lcam.report.analysis import GroupResult, PresetResult
from lcam.report.runs import Run

__all__ = ["figure_stem", "preset_figures", "write_preset_figures"]

FORMATS = ("png", "svg")
DPI = 150
Panel = Callable[[Axes, "_Plot"], None]


def figure_stem(preset: str) -> str:
    """The preset name made safe as a file name (``fig3-cifar10`` stays as it is)."""
    return re.sub(r"[^A-Za-z0-9._-]+", "_", preset)


class _Plot:
    """The runs of one preset, grouped, coloured and styled in the order of the report.

    Every group is drawn once (the report has already merged duplicate controls, see
    `lcam.report.controls`). Fixed-momentum and LCAM groups get distinct colours, none
    reused; a control is dashed in the colour of the first of its LCAM groups that is
    drawn (a second control of the same LCAM group gets another dash pattern), or gets
    a colour of its own when none of them is.
    """

    def __init__(self, result: PresetResult, runs: Sequence[Run],
                 names: Sequence[str] | None = None) -> None:
        self.result = result
        self.groups = [g.name for g in result.groups if names is None or g.name in names]
        self.color, self.linestyle = _styles(result)
        self.label = {g.name: f"{_name(g)}, n={len(g.finished_seeds)})" for g in result.groups}
        self.partial_label = {g.name: f"{_name(g)}, partial runs only)" for g in result.groups}
        mine = [r for r in runs if r.preset == result.preset]
        self.finished = {
            n: [r for r in mine if r.group.name == n and r.finished] for n in self.groups
        }
        self.partial = {
            n: [r for r in mine if r.group.name == n and not r.finished] for n in self.groups
        }

    def draw(
        self,
        ax: Axes,
        values: Callable[[Run], Sequence[float | None]],
        *,
        only: Callable[[str], bool] = lambda name: True,
    ) -> list[np.ndarray]:
        """Mean line and min–max band per group, partial runs dotted, then the legend.

        Returns the mean curves drawn (empty when there was nothing to draw).
        """
        means = []
        partial_drawn = False
        for name in self.groups:
            if not only(name):
                continue
            color = self.color[name]
            curves = [_as_array(values(r)) for r in self.finished[name]]
            curves = [c for c in curves if c.size and not np.all(np.isnan(c))]
            if curves:
                stack = np.vstack(curves)
                x = np.arange(1, stack.shape[1] + 1)
                mean = np.nanmean(stack, axis=0)
                marker = "o" if x.size == 1 else None
                ax.plot(
                    x,
                    mean,
                    color=color,
                    lw=1.6,
                    ls=self.linestyle[name],
                    marker=marker,
                    label=self.label[name],
                )
                if len(curves) > 1:
                    low, high = np.nanmin(stack, axis=0), np.nanmax(stack, axis=0)
                    ax.fill_between(x, low, high, color=color, alpha=0.2, lw=0)
                means.append(mean)
            # A group without finished runs is named by its first partial line.
            label = None if curves else self.partial_label[name]
            for run in self.partial[name]:
                curve = _as_array(values(run))
                if curve.size and not np.all(np.isnan(curve)):
                    x = np.arange(1, curve.size + 1)
                    marker = "o" if x.size == 1 else None
                    ax.plot(x, curve, color=color, lw=0.9, ls=":", marker=marker, label=label)
                    partial_drawn, label = True, None
        handles, labels = ax.get_legend_handles_labels()
        if partial_drawn:
            handles.append(Line2D([], [], color="0.4", lw=0.9, ls=":"))
            labels.append("partial run (not in the mean)")
        if handles:
            ax.legend(handles, labels, fontsize="small")
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        return means


# Dash patterns of controls: the first control of an LCAM group is "--"; dotted is
# kept for partial runs.
_CONTROL_DASHES: tuple[str | tuple[float, tuple[float, ...]], ...] = (
    "--",
    "-.",
    (0.0, (6.0, 1.5, 1.0, 1.5, 1.0, 1.5)),
    (0.0, (1.0, 1.0, 4.0, 1.0)),
)


def _is_control(group: GroupResult) -> bool:
    return group.role == "control"


def _name(group: GroupResult) -> str:
    """The legend label up to its closing part: ``m0.9 (fixed 0.9``."""
    if _is_control(group):
        momentum = "?" if group.momentum is None else f"{group.momentum:.3g}"
        matched = ", ".join(group.matched_to or ()) or "no LCAM group"
        return f"control {momentum} ({matched}"
    return f"{group.name} ({group.momentum_text}"


def _palette(count: int) -> list[tuple[float, float, float, float]]:
    """``count`` distinct colours: tab10, then tab20, then evenly spaced on turbo."""
    for name in ("tab10", "tab20"):
        cmap = matplotlib.colormaps[name]
        if count <= cmap.N:
            return [cmap(i) for i in range(count)]
    turbo = matplotlib.colormaps["turbo"]
    return [turbo(x) for x in np.linspace(0.05, 0.95, count)]


def _styles(result: PresetResult) -> tuple[dict[str, Any], dict[str, Any]]:
    """Colour and line style per group (see `_Plot`)."""
    groups = result.groups
    own = {g.name for g in groups if not _is_control(g)}
    lead = {}
    for g in groups:
        if _is_control(g):
            first = next((m for m in g.matched_to or () if m in own), None)
            if first is not None:
                lead[g.name] = first
    coloured = [g.name for g in groups if g.name not in lead]
    color: dict[str, Any] = dict(zip(coloured, _palette(len(coloured)), strict=True))
    linestyle: dict[str, Any] = {g.name: "-" for g in groups if not _is_control(g)}
    dashes_used: dict[str, int] = {}
    for g in groups:
        if not _is_control(g):
            continue
        key = lead.get(g.name, g.name)
        color[g.name] = color[key]
        index = dashes_used.get(key, 0)
        dashes_used[key] = index + 1
        linestyle[g.name] = _CONTROL_DASHES[index % len(_CONTROL_DASHES)]
    return color, linestyle


def _as_array(values: Sequence[float | None]) -> np.ndarray:
    return np.array([np.nan if v is None else v for v in values], dtype=np.float64)


def _log_if_wide(ax: Axes) -> None:
    """Log y-scale when every value is positive and they span more than a decade."""
    lines = [np.asarray(line.get_ydata(), dtype=np.float64) for line in ax.get_lines()]
    values = np.concatenate(lines) if lines else np.array([])
    values = values[np.isfinite(values)]
    if values.size and values.min() > 0 and values.max() > 10 * values.min():
        ax.set_yscale("log")


def _zoom_on_tail(ax: Axes, means: list[np.ndarray]) -> None:
    """Let the first 10% of epochs run off the top when they would squash the rest."""
    longest = max((m.size for m in means), default=0)
    if longest < 10:
        return
    skip = longest // 10
    tails = [m[skip:] for m in means if m.size > skip and not np.all(np.isnan(m[skip:]))]
    if not tails:
        return
    top = max(float(np.nanmax(t)) for t in tails)
    low, high = ax.get_ylim()
    if top < high:
        ax.set_ylim(low, top + 0.05 * (top - low))


def _test_error(ax: Axes, plot: _Plot) -> None:
    result = plot.result
    if result.target_error is not None:
        ax.axhline(
            result.target_error,
            color="0.5",
            lw=0.8,
            ls="--",
            zorder=0,
            label=f"{result.fixed_group} final mean ({result.target_error:.3f}%)",
        )
    _zoom_on_tail(ax, plot.draw(ax, lambda r: r.test_error))
    ax.set_ylabel("test error (%)")
    ax.set_title("Test error")


def _train_loss(ax: Axes, plot: _Plot) -> None:
    plot.draw(ax, lambda r: r.train_loss)
    _log_if_wide(ax)
    ax.set_ylabel("train loss (mean over the epoch)")
    ax.set_title("Train loss")


def _lr(ax: Axes, plot: _Plot) -> None:
    plot.draw(ax, lambda r: r.lr)
    _log_if_wide(ax)
    ax.set_ylabel("learning rate (end of epoch)")
    ax.set_title("Learning rate")


def _fraction_above(ax: Axes, plot: _Plot) -> None:
    lcam = {g.name for g in plot.result.groups if g.optimizer == "lcam"}
    drawn = plot.draw(ax, lambda r: r.fraction_above, only=lambda name: name in lcam)
    if not drawn and not ax.get_lines():
        ax.text(
            0.5,
            0.5,
            "no LCAM group recorded it\n(plain SGD has no fraction)",
            ha="center",
            va="center",
            transform=ax.transAxes,
            color="0.4",
        )
    ax.set_ylabel("fraction of steps at/above the loss average")
    ax.set_title("Steps with momentum_above")


def _one_legend_below(fig: Figure, *axes: Axes) -> None:
    """Replace the panels' legends by one shared legend under the figure."""
    legend = axes[0].get_legend()
    if legend is None:
        return
    pairs = zip(legend.legend_handles, legend.get_texts(), strict=True)
    entries = [(handle, text.get_text()) for handle, text in pairs if handle is not None]
    for ax in axes:
        old = ax.get_legend()
        if old is not None:
            old.remove()
    fig.legend(
        [handle for handle, _ in entries],
        [label for _, label in entries],
        loc="outside lower center",
        ncols=3,
        fontsize="small",
    )


def _save(fig: Figure, fig_dir: Path, stem: str) -> list[Path]:
    FigureCanvasAgg(fig)
    paths = []
    for fmt in FORMATS:
        path = fig_dir / f"{stem}.{fmt}"
        metadata = {"Date": None} if fmt == "svg" else None
        fig.savefig(path, format=fmt, dpi=DPI, metadata=metadata)
        paths.append(path)
    return paths


def _style() -> Any:
    return matplotlib.rc_context(
        {
            "svg.hashsalt": "lcam-report",
            "svg.fonttype": "none",
            "axes.spines.top": False,
            "axes.spines.right": False,
            "axes.grid": True,
            "grid.alpha": 0.3,
        }
    )


def _shortened(result: PresetResult, runs: Sequence[Run]) -> set[str]:
    """The preset's groups trained on a shortened schedule (``m0.9-half``)."""
    return {r.group.name for r in runs if r.preset == result.preset and r.group.shortened}


def _build(result: PresetResult, runs: Sequence[Run]) -> dict[str, Figure]:
    shortened = _shortened(result, runs)
    full = [g.name for g in result.groups if g.name not in shortened]
    plot = _Plot(result, runs, full)
    subtitle = ", ".join(v for v in (result.data, result.model, result.schedule) if v)
    title = f"{result.preset} ({subtitle})" if subtitle else result.preset
    figures: dict[str, Figure] = {}
    fig = Figure(figsize=(11, 4.8), layout="constrained")
    left, right = fig.subplots(1, 2)
    _test_error(left, plot)
    _train_loss(right, plot)
    _one_legend_below(fig, left, right)
    fig.suptitle(title)
    figures["curves"] = fig
    panels: list[tuple[str, Panel]] = [
        ("test_error", _test_error),
        ("train_loss", _train_loss),
        ("lr", _lr),
        ("fraction_above", _fraction_above),
    ]
    for suffix, panel in panels:
        fig = Figure(figsize=(6.4, 4.4), layout="constrained")
        panel(fig.subplots(), plot)
        fig.suptitle(title, fontsize="medium")
        figures[suffix] = fig
    if shortened:
        # Shortened groups beside fixed 0.9 at full length, the reference of claim C3.
        names = [n for n in (result.fixed_group,) if n is not None]
        names += [g.name for g in result.groups if g.name in shortened]
        fig = Figure(figsize=(11, 4.8), layout="constrained")
        left, right = fig.subplots(1, 2)
        half = _Plot(result, runs, names)
        _test_error(left, half)
        _train_loss(right, half)
        _one_legend_below(fig, left, right)
        fig.suptitle(f"{title}: shortened schedules against {result.fixed_group or 'fixed 0.9'}")
        figures["shortened"] = fig
    return figures


def preset_figures(result: PresetResult, runs: Sequence[Run]) -> dict[str, Figure]:
    """The figures of one preset, unsaved, by kind (``curves``, ``test_error``, ...)."""
    with _style():
        return _build(result, runs)


def write_preset_figures(result: PresetResult, runs: Sequence[Run], fig_dir: Path) -> list[Path]:
    """Write every figure of one preset into ``fig_dir``; return the files written."""
    fig_dir.mkdir(parents=True, exist_ok=True)
    stem = figure_stem(result.preset)
    written: list[Path] = []
    with _style():
        for kind, fig in _build(result, runs).items():
            written += _save(fig, fig_dir, f"{stem}_{kind}")
    return written
