"""The running loss average and the above/below decision of LCAM, kept as device tensors.

LCAM picks, at every step, one of two momentum values by comparing the training loss
with a running average of the loss. This module owns that comparison and nothing else:
it never touches parameters.

Everything lives in one small ``float64`` vector on the parameters' device (``float32``
on devices without float64, such as MPS). Every update is a handful of tensor ops with
no Python branching on tensor values, so a step never waits for the device: the
decision comes back as a 0-dim ``bool`` tensor that the update kernels consume directly.
Keeping the vector apart from the per-parameter state means torch's dtype casting on
``load_state_dict`` (which casts per-parameter state to the parameter's dtype) cannot
turn the statistics into bf16.

Two averages (``loss_average``):

* ``"epoch"``: the mean of the finite losses of the current window, the current loss
  included; :meth:`RunningLoss.new_window` (``LCAM.end_epoch()``) restarts it. This is
  what the authors' demo scripts do (``sum / (i + 1)``, reset every epoch).
* ``"ema"``: an exponential moving average ``avg <- decay * avg + (1 - decay) * loss``,
  started at the first finite loss; it is not reset by a new window.

Two decision modes (``decision``):

* ``"current"`` (eq. 9 of the paper): this step's loss against the average that
  includes it; strictly above -> ``momentum_above``, ties -> ``momentum_below``.
* ``"lagged"`` (the demo scripts): step *i* uses the decision taken after step *i-1*:
  loss strictly below the mean -> ``momentum_below``, otherwise (ties included) ->
  ``momentum_above``. The decision survives a new window, so the last decision of an
  epoch applies to the first step of the next. Before any loss has been seen the pending
  decision is "above" (the tie side); without Nesterov the first step's momentum value
  has no effect anyway, since momentum buffers start from the gradient.

A non-finite loss is left out of the average and counted in ``nonfinite_losses``; in
``"current"`` mode the step is treated as above the average, in ``"lagged"`` mode the
pending decision is kept.

Windows. :meth:`RunningLoss.new_window` (``LCAM.end_epoch()``) starts the next window;
with ``steps_per_epoch=N`` the window also restarts by itself, on the device, at the
first step after a window has counted ``N`` steps (so reading the statistics right after
an epoch's last step still shows that whole epoch). ``window_index`` counts the restarts:
in a correctly windowed run it is the epoch index, and a ``0`` after the first epoch says
that nothing ever restarted the window (the "epoch" average then spans the whole run).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

__all__ = [
    "LossStatistics",
    "RunningLoss",
    "DECISIONS",
    "LOSS_AVERAGES",
    "check_steps_per_epoch",
]

DECISIONS = ("current", "lagged")
LOSS_AVERAGES = ("epoch", "ema")

# Layout of the statistics vector.
_AVERAGE = 0  # "epoch": sum of the window's finite losses; "ema": the average itself
_COUNT = 1  # finite losses in the window
_ABOVE = 2  # steps of the window that used momentum_above
_BELOW = 3  # steps of the window that used momentum_below
_NONFINITE = 4  # non-finite losses seen in the window
_PENDING_ABOVE = 5  # "lagged": 1.0 when the next step uses momentum_above
_EMA_STARTED = 6  # "ema": 1.0 once the average holds a loss
_TOTAL_STEPS = 7  # steps since construction (never reset)
_WINDOW = 8  # index of the current window: +1 at every restart (never reset)
_SIZE = 9
_LEGACY_SIZE = 8  # vectors saved before _WINDOW existed load with window index 0


@dataclass(frozen=True)
class LossStatistics:
    """A snapshot of LCAM's loss statistics for the current window (usually an epoch)."""

    steps: int
    steps_above: int
    steps_below: int
    nonfinite_losses: int
    loss_average: float | None
    total_steps: int
    window_index: int
    """0 in the first window, +1 at every ``end_epoch()`` or automatic restart
    (``steps_per_epoch``): the epoch index in a correctly windowed run. ``0`` after
    the first epoch means the window never restarted and the average spans the run."""

    @property
    def fraction_above(self) -> float | None:
        """Fraction of the window's steps that used ``momentum_above`` (None if no step)."""
        return self.steps_above / self.steps if self.steps else None


def check_steps_per_epoch(value: object) -> int | None:
    """Validate ``steps_per_epoch`` (an int >= 1, or None); return it."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(
            f"Invalid steps_per_epoch value: {value!r} (must be an int >= 1, the number of "
            "optimizer steps in one epoch, or None to restart the window only at end_epoch())"
        )
    return value


def _statistics_dtype(device: torch.device) -> torch.dtype:
    return torch.float32 if device.type == "mps" else torch.float64


class RunningLoss:
    """Running loss average plus the decision it drives; one per optimizer.

    ``update(loss)`` is called once per optimizer step and returns a 0-dim bool tensor:
    True when this step must use ``momentum_above``.
    """

    def __init__(
        self,
        *,
        decision: str,
        loss_average: str,
        ema_decay: float,
        device: torch.device,
        steps_per_epoch: int | None = None,
    ) -> None:
        self.decision = decision
        self.loss_average = loss_average
        self.ema_decay = float(ema_decay)
        self.steps_per_epoch = check_steps_per_epoch(steps_per_epoch)
        self.state = self.fresh_state(device)

    @staticmethod
    def fresh_state(device: torch.device) -> Tensor:
        state = torch.zeros(_SIZE, dtype=_statistics_dtype(device), device=device)
        state[_PENDING_ABOVE] = 1.0
        return state

    @property
    def device(self) -> torch.device:
        return self.state.device

    def to(self, device: torch.device) -> None:
        """Move the statistics to ``device`` (keeps float64 where the device has it)."""
        self.state = self.state.to(device=device, dtype=_statistics_dtype(device))

    # ------------------------------------------------------------------ the hot path
    def update(self, loss: Tensor) -> Tensor:
        """Account for this step's (already reduced) loss; return "use momentum_above".

        ``loss`` must be a 1-element tensor on :attr:`device`. Only tensor ops: no
        host synchronisation.
        """
        s = self.state
        if self.steps_per_epoch is not None:
            s = self._restarted_if_full(s, self.steps_per_epoch)
        loss = loss.reshape(()).to(s.dtype)
        finite = torch.isfinite(loss)
        value = torch.where(finite, loss, torch.zeros_like(loss))
        finite_f = finite.to(s.dtype)

        if self.loss_average == "epoch":
            new_average = s[_AVERAGE] + value
            new_count = s[_COUNT] + finite_f
            mean = new_average / torch.clamp(new_count, min=1.0)
            ema_started = s[_EMA_STARTED]
        else:
            started = s[_EMA_STARTED] > 0
            blended = s[_AVERAGE] * self.ema_decay + value * (1.0 - self.ema_decay)
            candidate = torch.where(started, blended, value)
            new_average = torch.where(finite, candidate, s[_AVERAGE])
            new_count = s[_COUNT] + finite_f
            mean = new_average
            ema_started = torch.maximum(s[_EMA_STARTED], finite_f)

        if self.decision == "current":
            # eq. (9): strictly above -> above; ties -> below; non-finite -> above.
            use_above = torch.logical_or(loss > mean, ~finite)
            pending = s[_PENDING_ABOVE]
        else:
            # demo loop: this step uses the decision of the previous step; the next
            # step uses "above" unless this loss is strictly below the mean.
            use_above = s[_PENDING_ABOVE] > 0
            next_above = torch.where(finite, ~(loss < mean), use_above)
            pending = next_above.to(s.dtype)

        use_above_f = use_above.to(s.dtype)
        self.state.copy_(
            torch.stack(
                [
                    new_average,
                    new_count,
                    s[_ABOVE] + use_above_f,
                    s[_BELOW] + (1.0 - use_above_f),
                    s[_NONFINITE] + (1.0 - finite_f),
                    pending,
                    ema_started,
                    s[_TOTAL_STEPS] + 1.0,
                    s[_WINDOW],
                ]
            )
        )
        return use_above

    def _first_reset(self) -> int:
        """First entry a new window zeroes (the EMA itself survives a new window)."""
        return _COUNT if self.loss_average == "ema" else _AVERAGE

    def _restarted_if_full(self, s: Tensor, steps_per_epoch: int) -> Tensor:
        """``s`` with a new window begun if the current one has ``steps_per_epoch`` steps.

        Chosen with ``torch.where`` on the device: no host synchronisation.
        """
        full = (s[_ABOVE] + s[_BELOW]) >= steps_per_epoch
        restarted = s.clone()
        restarted[self._first_reset() : _NONFINITE + 1] = 0.0
        restarted[_WINDOW] += 1.0
        return torch.where(full, restarted, s)

    def new_window(self) -> None:
        """Start a new averaging window (an epoch): no host synchronisation."""
        # Slices are views: zeroing them launches no copy from the host.
        self.state[self._first_reset() : _NONFINITE + 1].zero_()
        self.state[_WINDOW : _WINDOW + 1].add_(1.0)

    # ---------------------------------------------------------------- observability
    def snapshot(self) -> LossStatistics:
        """Read the statistics (one device-to-host copy)."""
        v = self.state.tolist()
        count = int(v[_COUNT])
        if self.loss_average == "epoch":
            average = v[_AVERAGE] / count if count else None
        else:
            average = v[_AVERAGE] if v[_EMA_STARTED] > 0 else None
        above, below = int(v[_ABOVE]), int(v[_BELOW])
        return LossStatistics(
            steps=above + below,
            steps_above=above,
            steps_below=below,
            nonfinite_losses=int(v[_NONFINITE]),
            loss_average=average,
            total_steps=int(v[_TOTAL_STEPS]),
            window_index=int(v[_WINDOW]),
        )

    # ----------------------------------------------------------------- persistence
    def state_dict(self) -> dict[str, object]:
        return {
            "decision": self.decision,
            "loss_average": self.loss_average,
            "ema_decay": self.ema_decay,
            "steps_per_epoch": self.steps_per_epoch,
            "statistics": self.state.detach().clone(),
        }

    @staticmethod
    def check_state_dict(saved: object) -> dict[str, object]:
        """Validate a saved entry without changing anything; return it normalised."""
        if not isinstance(saved, dict):
            raise ValueError(
                "the 'lcam' entry of the optimizer state_dict must be a dict as written by "
                f"LCAM.state_dict(), got {type(saved).__name__}"
            )
        missing = {"decision", "loss_average", "ema_decay", "statistics"} - saved.keys()
        if missing:
            raise ValueError(
                f"the 'lcam' entry of the optimizer state_dict lacks {sorted(missing)}: "
                "was it written by LCAM.state_dict()?"
            )
        if saved["decision"] not in DECISIONS:
            raise ValueError(f"saved decision {saved['decision']!r} is not one of {DECISIONS}")
        if saved["loss_average"] not in LOSS_AVERAGES:
            raise ValueError(
                f"saved loss_average {saved['loss_average']!r} is not one of {LOSS_AVERAGES}"
            )
        stats = saved["statistics"]
        if not isinstance(stats, Tensor) or stats.shape not in ((_SIZE,), (_LEGACY_SIZE,)):
            raise ValueError(
                f"saved LCAM statistics must be a tensor of shape ({_SIZE},), got "
                f"{getattr(stats, 'shape', type(stats).__name__)}"
            )
        try:
            check_steps_per_epoch(saved.get("steps_per_epoch"))
        except ValueError as error:
            raise ValueError(f"saved {error}") from None
        return saved

    def load_state_dict(self, saved: dict[str, object]) -> None:
        saved = self.check_state_dict(saved)
        self.decision = str(saved["decision"])
        self.loss_average = str(saved["loss_average"])
        self.ema_decay = float(saved["ema_decay"])  # type: ignore[arg-type]
        if "steps_per_epoch" in saved:  # state_dicts saved before it existed keep ours
            self.steps_per_epoch = check_steps_per_epoch(saved["steps_per_epoch"])
        stats = saved["statistics"]
        assert isinstance(stats, Tensor)
        if stats.shape == (_LEGACY_SIZE,):
            stats = torch.cat([stats.detach(), stats.new_zeros(_SIZE - _LEGACY_SIZE)])
        self.state = stats.detach().to(
            device=self.device, dtype=_statistics_dtype(self.device)
        ).clone()
