"""LCAM.record_loss (the loss hand-off for trainers that call step() without a loss) and
steps_per_epoch (windows that restart without end_epoch())."""

from __future__ import annotations

import copy
import io

import pytest
import torch
from lcam_reference import batch_loss, make_problem, same_parameters

from lcam import LCAM


def _lcam(params, **overrides):
    options = dict(lr=0.1, momentum_above=0.9, momentum_below=0.95, weight_decay=5e-4)
    options.update(overrides)
    return LCAM(params, **options)


def _micro_losses(model, batch, k):
    """Backward of the mean over k micro-batches (each loss / k); the k losses."""
    x, y = batch
    losses = []
    for xs, ys in zip(x.chunk(k), y.chunk(k), strict=True):
        loss = torch.nn.functional.cross_entropy(model(xs), ys)
        (loss / k).backward()
        losses.append(loss.detach())
    return losses


def _state(opt):
    return opt._running_loss.state.clone(), opt.recorded_loss_count


# ----------------------------------------------------------------- record_loss == loss=
@pytest.mark.parametrize("decision", ["current", "lagged"])
@pytest.mark.parametrize("loss_average", ["epoch", "ema"])
def test_recorded_micro_batch_losses_decide_like_their_mean_passed_as_loss(
    decision, loss_average, micro_batches=4
):
    model, batches = make_problem(torch.float32, seed=4)
    reference = copy.deepcopy(model)
    opt = _lcam(model.parameters(), decision=decision, loss_average=loss_average)
    ref = _lcam(reference.parameters(), decision=decision, loss_average=loss_average)
    for _ in range(2):
        for batch in batches[:6]:
            opt.zero_grad()
            for loss in _micro_losses(model, batch, micro_batches):
                opt.record_loss(loss)
            assert opt.recorded_loss_count == micro_batches
            returned = opt.step()
            assert opt.recorded_loss_count == 0
            ref.zero_grad()
            mean = torch.stack(_micro_losses(reference, batch, micro_batches)).double().mean()
            ref.step(loss=mean)
            assert returned.dtype == torch.float64 and torch.equal(returned, mean)
            assert torch.equal(opt._running_loss.state, ref._running_loss.state)
        opt.end_epoch()
        ref.end_epoch()
    assert same_parameters(model, reference)


def test_one_recorded_loss_is_bitwise_the_same_step_as_passing_it():
    model, batches = make_problem(torch.float32, seed=5)
    reference = copy.deepcopy(model)
    opt, ref = _lcam(model.parameters()), _lcam(reference.parameters())
    for batch in batches:
        for net, o in ((model, opt), (reference, ref)):
            o.zero_grad()
            loss = batch_loss(net, batch)
            loss.backward()
            if o is opt:
                o.record_loss(loss)  # a float32 tensor with a graph: detached inside
                o.step()
            else:
                o.step(loss=loss)
    assert same_parameters(model, reference)
    assert torch.equal(opt._running_loss.state, ref._running_loss.state)


def test_python_numbers_can_be_recorded():
    model, batches = make_problem(torch.float64)
    opt = _lcam(model.parameters())
    batch_loss(model, batches[0]).backward()
    opt.record_loss(1.0)
    opt.record_loss(2)
    opt.step()
    assert opt.statistics().loss_average == 1.5


# ------------------------------------------------------------------------ precedence
def test_loss_argument_while_losses_are_recorded_raises_and_changes_nothing():
    model, batches = make_problem()
    opt = _lcam(model.parameters())
    loss = batch_loss(model, batches[0])
    loss.backward()
    opt.record_loss(loss)
    opt.record_loss(loss)
    params = [p.detach().clone() for p in model.parameters()]
    before = _state(opt)
    with pytest.raises(ValueError, match=r"got loss=\.\.\. but 2 loss\(es\) were recorded"):
        opt.step(loss=loss)
    assert torch.equal(opt._running_loss.state, before[0]) and opt.recorded_loss_count == 2
    assert all(torch.equal(p, q) for p, q in zip(model.parameters(), params, strict=True))


def test_recorded_losses_decide_over_the_closures_return_value():
    model, batches = make_problem(torch.float64, seed=2)
    reference = copy.deepcopy(model)
    opt, ref = _lcam(model.parameters()), _lcam(reference.parameters())
    for k, batch in enumerate(batches):
        recorded = batch_loss(model, batch).detach()

        def closure(batch=batch, k=k):
            # Returns what Lightning's closure would (a loss divided by the
            # accumulation steps), and None on odd steps (manual optimisation).
            opt.zero_grad()
            loss = batch_loss(model, batch)
            loss.backward()
            return None if k % 2 else loss / 2

        opt.record_loss(recorded)
        returned = opt.step(closure)
        assert (returned is None) if k % 2 else returned.requires_grad
        ref.zero_grad()
        batch_loss(reference, batch).backward()
        ref.step(loss=recorded)
    assert torch.equal(opt._running_loss.state, ref._running_loss.state)
    assert same_parameters(model, reference)


def test_closure_returning_none_without_recorded_losses_says_how_to_fix_it():
    model, batches = make_problem()
    opt = _lcam(model.parameters())
    assert opt.step(lambda: None) is None  # no gradient, no loss: a skipped batch, no-op
    assert opt.statistics().total_steps == 0 and not opt.state
    batch_loss(model, batches[0]).backward()
    with pytest.raises(ValueError, match=r"closure returned None.*opt\.record_loss\(loss\)"):
        opt.step(lambda: None)
    with pytest.raises(TypeError, match=r"or opt\.record_loss\(loss\) for each micro-batch"):
        opt.step()


@pytest.mark.parametrize("value,error,message", [
    (torch.ones(4), ValueError,
     r"LCAM\.record_loss needs the scalar loss of one micro-batch, got a tensor of shape \(4,\)"),
    ("0.5", TypeError, r"LCAM\.record_loss needs the loss as a tensor or a number, got str"),
    (torch.ones((), dtype=torch.complex64), ValueError, "needs a real-valued loss"),
])
def test_bad_recorded_losses_raise_and_record_nothing(value, error, message):
    model, _ = make_problem()
    opt = _lcam(model.parameters())
    opt.record_loss(torch.tensor(1.0))
    with pytest.raises(error, match=message):
        opt.record_loss(value)
    assert opt.recorded_loss_count == 1 and torch.equal(opt._recorded_sum,
                                                         torch.tensor(1.0, dtype=torch.float64))


# ------------------------------------------------------------------ non-finite losses
def test_a_nonfinite_recorded_loss_makes_the_step_nonfinite_under_skip():
    model, batches = make_problem(torch.float64)
    opt = _lcam(model.parameters(), decision="current")
    batch_loss(model, batches[0]).backward()
    opt.record_loss(2.0)
    opt.step()
    opt.record_loss(1.0)
    opt.record_loss(float("nan"))
    opt.step()  # non-finite: counted, left out of the average, treated as above
    stats = opt.statistics()
    assert (stats.steps, stats.nonfinite_losses, stats.loss_average) == (2, 1, 2.0)
    assert stats.steps_above == 1 and opt.recorded_loss_count == 0


def test_a_nonfinite_recorded_loss_raises_at_the_step_under_raise_and_keeps_the_record():
    model, batches = make_problem()
    opt = _lcam(model.parameters(), nonfinite_loss="raise")
    batch_loss(model, batches[0]).backward()
    opt.record_loss(torch.tensor(1.0))
    opt.record_loss(torch.tensor(float("inf")))  # recording never reads the value
    before = _state(opt)
    params = [p.detach().clone() for p in model.parameters()]
    with pytest.raises(ValueError, match=r"non-finite loss inf \(the mean of 2 recorded"):
        opt.step()
    assert torch.equal(opt._running_loss.state, before[0]) and opt.recorded_loss_count == 2
    assert all(torch.equal(p, q) for p, q in zip(model.parameters(), params, strict=True))


# -------------------------------------------------------------------------- state_dict
def test_state_dict_carries_recorded_losses_and_resumes_mid_accumulation_bitwise():
    model, batches = make_problem(seed=6)
    opt = _lcam(model.parameters(), decision="lagged")
    for batch in batches[:3]:
        opt.zero_grad()
        for loss in _micro_losses(model, batch, 2):
            opt.record_loss(loss)
        opt.step()
    opt.zero_grad()
    first, second = batches[3][0].chunk(2), batches[3][1].chunk(2)
    loss = torch.nn.functional.cross_entropy(model(first[0]), second[0])
    (loss / 2).backward()
    opt.record_loss(loss)  # half-way through the accumulation cycle
    buffer = io.BytesIO()
    torch.save({"model": model.state_dict(), "opt": opt.state_dict(),
                "grads": [p.grad.clone() for p in model.parameters()]}, buffer)
    assert opt.state_dict()["lcam"]["recorded_loss_count"] == 1

    def finish(net, optimizer):
        loss = torch.nn.functional.cross_entropy(net(first[1]), second[1])
        (loss / 2).backward()
        optimizer.record_loss(loss)
        optimizer.step()

    finish(model, opt)
    buffer.seek(0)
    saved = torch.load(buffer)
    resumed, _ = make_problem(seed=99)
    resumed.load_state_dict(saved["model"])
    for p, g in zip(resumed.parameters(), saved["grads"], strict=True):
        p.grad = g
    resumed_opt = _lcam(resumed.parameters())
    resumed_opt.load_state_dict(saved["opt"])
    assert resumed_opt.recorded_loss_count == 1
    finish(resumed, resumed_opt)
    assert same_parameters(model, resumed)
    assert torch.equal(opt._running_loss.state, resumed_opt._running_loss.state)


def test_loading_a_state_dict_replaces_the_recorded_losses():
    model, _ = make_problem()
    opt = _lcam(model.parameters())
    at_boundary = opt.state_dict()
    opt.record_loss(3.0)
    clone = copy.deepcopy(opt)
    assert clone.recorded_loss_count == 1 and torch.equal(clone._recorded_sum, opt._recorded_sum)
    opt.load_state_dict(at_boundary)
    assert opt.recorded_loss_count == 0
    opt.record_loss(3.0)
    opt.load_state_dict(torch.optim.SGD(model.parameters(), lr=0.1).state_dict()
                        | {"param_groups": opt.state_dict()["param_groups"]})
    assert opt.recorded_loss_count == 1  # no "lcam" entry: the record stays


@pytest.mark.parametrize("entry,message", [
    ({"recorded_loss_count": -1}, "saved recorded_loss_count -1 is not an int >= 0"),
    ({"recorded_loss_count": 2, "recorded_loss_sum": None},
     "saved recorded_loss_count is 2 but recorded_loss_sum is not a 1-element tensor"),
    ({"steps_per_epoch": 0}, "saved Invalid steps_per_epoch value: 0"),
])
def test_corrupt_recorded_or_window_entries_fail_to_load_without_changes(entry, message):
    model, _ = make_problem()
    opt = _lcam(model.parameters())
    opt.record_loss(1.0)
    corrupt = opt.state_dict()
    corrupt["lcam"].update(entry)
    corrupt["lcam"]["statistics"] = torch.ones(9, dtype=torch.float64)
    before = _state(opt)
    with pytest.raises(ValueError, match=message):
        opt.load_state_dict(corrupt)
    assert torch.equal(opt._running_loss.state, before[0]) and opt.recorded_loss_count == 1
    assert opt.steps_per_epoch is None


# -------------------------------------------------------------------- steps_per_epoch
def _train(model, opt, batches, epochs, *, call_end_epoch, stats=None):
    for _ in range(epochs):
        for batch in batches:
            opt.zero_grad()
            loss = batch_loss(model, batch)
            loss.backward()
            opt.step(loss=loss)
        if stats is not None:
            stats.append(opt.statistics())
        if call_end_epoch:
            opt.end_epoch()


@pytest.mark.parametrize("decision,loss_average", [("current", "epoch"), ("lagged", "ema")])
def test_steps_per_epoch_restarts_the_window_exactly_like_end_epoch(decision, loss_average):
    model, batches = make_problem(torch.float64, seed=3)
    twins = [copy.deepcopy(model) for _ in range(2)]
    options = dict(decision=decision, loss_average=loss_average)
    automatic = _lcam(model.parameters(), steps_per_epoch=len(batches), **options)
    manual = _lcam(twins[0].parameters(), **options)
    both = _lcam(twins[1].parameters(), steps_per_epoch=len(batches), **options)
    seen: list = []
    _train(model, automatic, batches, 3, call_end_epoch=False, stats=seen)
    _train(twins[0], manual, batches, 3, call_end_epoch=True)
    _train(twins[1], both, batches, 3, call_end_epoch=True)
    # Read right after an epoch's last step, the statistics show that whole epoch.
    assert [(s.steps, s.window_index) for s in seen] == [(10, 0), (10, 1), (10, 2)]
    assert same_parameters(model, twins[0]) and same_parameters(model, twins[1])
    automatic.end_epoch()  # after the last epoch, the same state as the manual runs
    assert torch.equal(automatic._running_loss.state, manual._running_loss.state)
    assert torch.equal(both._running_loss.state, manual._running_loss.state)


def test_without_end_epoch_or_steps_per_epoch_the_window_index_shows_a_whole_run_average():
    model, batches = make_problem()
    opt = _lcam(model.parameters())
    _train(model, opt, batches, 2, call_end_epoch=False)
    stats = opt.statistics()
    assert (stats.steps, stats.total_steps, stats.window_index) == (20, 20, 0)


def test_steps_per_epoch_survives_a_state_dict_round_trip_mid_epoch():
    model, batches = make_problem(seed=8)
    opt = _lcam(model.parameters(), steps_per_epoch=4)
    _train(model, opt, batches[:6], 1, call_end_epoch=False)  # window: steps 5-6 of 4+4
    saved = copy.deepcopy(opt.state_dict())
    assert saved["lcam"]["steps_per_epoch"] == 4
    resumed_model = copy.deepcopy(model)
    resumed = _lcam(resumed_model.parameters())
    resumed.load_state_dict(saved)
    assert resumed.steps_per_epoch == 4
    _train(model, opt, batches, 1, call_end_epoch=False)
    _train(resumed_model, resumed, batches, 1, call_end_epoch=False)
    assert same_parameters(model, resumed_model)
    assert torch.equal(opt._running_loss.state, resumed._running_loss.state)
    assert opt.statistics().window_index == 3 and opt.statistics().steps == 4


def test_statistics_saved_before_the_window_index_existed_load_with_index_zero():
    model, batches = make_problem()
    opt = _lcam(model.parameters())
    _train(model, opt, batches[:3], 1, call_end_epoch=False)
    legacy = opt.state_dict()
    legacy["lcam"]["statistics"] = legacy["lcam"]["statistics"][:8]
    del legacy["lcam"]["steps_per_epoch"]
    fresh = _lcam(model.parameters(), steps_per_epoch=7)
    fresh.load_state_dict(legacy)
    stats = fresh.statistics()
    assert (stats.steps, stats.window_index, fresh.steps_per_epoch) == (3, 0, 7)


@pytest.mark.parametrize("value", [0, -3, 2.5, True, "10"])
def test_bad_steps_per_epoch_is_rejected(value):
    model, _ = make_problem()
    with pytest.raises(ValueError, match=rf"Invalid steps_per_epoch value: {value!r} \(must be "
                                         r"an int >= 1"):
        _lcam(model.parameters(), steps_per_epoch=value)
