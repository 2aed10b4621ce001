"""LCAM as a torch optimizer: groups, state_dict, schedulers, AMP, bad input, sync-freedom."""

from __future__ import annotations

import copy
import io
import pickle

import pytest
import torch
from lcam_reference import IMPLEMENTATIONS, batch_loss, make_problem, run_lcam, same_parameters

from lcam import LCAM, balanced_momentum, matched_momentum

ALL_PATHS = {"default": {}, **IMPLEMENTATIONS}


def _lcam(params, **overrides):
    options = dict(lr=0.1, momentum_above=0.9, momentum_below=0.95, weight_decay=5e-4)
    options.update(overrides)
    return LCAM(params, **options)


def _snapshot(model, opt):
    return (
        [p.detach().clone() for p in model.parameters()],
        opt._running_loss.state.clone(),
        {id(p): {k: v.clone() for k, v in opt.state[p].items()} for p in model.parameters()},
    )


def _assert_unchanged(model, opt, snap):
    params, stats, state = snap
    assert all(torch.equal(a, b) for a, b in zip(model.parameters(), params, strict=True))
    assert torch.equal(opt._running_loss.state, stats)
    for p in model.parameters():
        assert {k: v.clone() for k, v in opt.state[p].items()}.keys() == state[id(p)].keys()
        for k, v in opt.state[p].items():
            assert torch.equal(v, state[id(p)][k])


# --------------------------------------------------------------------------- statistics
def test_statistics_count_each_side_per_epoch_and_restart_at_end_epoch():
    model, batches = make_problem(torch.float64, seed=1)
    opt = _lcam(model.parameters(), decision="lagged")
    per_epoch: list = []
    run_lcam(model, opt, batches, epochs=3, statistics=per_epoch)
    for stats in per_epoch:
        assert stats.steps == len(batches) == stats.steps_above + stats.steps_below
        assert stats.fraction_above == stats.steps_above / len(batches)
        assert stats.nonfinite_losses == 0
    assert [s.total_steps for s in per_epoch] == [10, 20, 30]
    after = opt.statistics()
    assert after.steps == 0 and after.loss_average is None and after.total_steps == 30


def test_epoch_average_is_the_mean_of_this_epochs_losses():
    model, batches = make_problem(torch.float64)
    opt = _lcam(model.parameters())
    losses = []
    for batch in batches[:7]:
        opt.zero_grad()
        loss = batch_loss(model, batch)
        loss.backward()
        opt.step(loss=loss)
        losses.append(loss.item())
    assert opt.statistics().loss_average == pytest.approx(sum(losses) / 7, rel=1e-15)


def test_ema_average_and_decision_follow_their_definition():
    model, batches = make_problem(torch.float64, seed=3)
    opt = _lcam(model.parameters(), loss_average="ema", ema_decay=0.8, decision="current")
    ema = None
    above = 0
    for epoch in range(2):
        for batch in batches:
            opt.zero_grad()
            loss = batch_loss(model, batch)
            loss.backward()
            opt.step(loss=loss)
            value = loss.item()
            ema = value if ema is None else 0.8 * ema + 0.2 * value
            above += value > ema
        if epoch == 0:
            opt.end_epoch()  # the EMA survives a new window
    stats = opt.statistics()
    assert stats.loss_average == pytest.approx(ema, rel=1e-12)
    assert stats.steps == len(batches)


def test_statistics_are_updated_once_per_step_with_many_groups():
    model, batches = make_problem()
    first, second = list(model.parameters())[:2], list(model.parameters())[2:]
    opt = LCAM([{"params": first}, {"params": second, "lr": 0.01}], lr=0.1,
               momentum_above=0.9, momentum_below=0.95)
    run_lcam(model, opt, batches[:4], epochs=1, statistics=(seen := []))
    assert seen[0].steps == 4 and seen[0].total_steps == 4


# ------------------------------------------------------------------------ param groups
def test_param_groups_use_their_own_lr_and_momentum_pair():
    model, batches = make_problem(torch.float64, seed=7)
    reference = copy.deepcopy(model)
    w1, b1, w2, b2 = model.parameters()
    opt = LCAM([{"params": [w1, b1]},
                {"params": [w2, b2], "lr": 0.03, "momentum_above": 0.8, "momentum_below": 0.5}],
               lr=0.1, momentum_above=0.9, momentum_below=0.95, decision="lagged")
    # Reference: the demo loop with two SGD groups, each given its own pair.
    r1, rb1, r2, rb2 = reference.parameters()
    sgd = torch.optim.SGD([{"params": [r1, rb1]}, {"params": [r2, rb2], "lr": 0.03}],
                          lr=0.1, momentum=0.9)
    pairs = [(0.95, 0.9), (0.5, 0.8)]  # (below, above) per group
    run_lcam(model, opt, batches, epochs=2)
    for _ in range(2):
        total = 0.0
        for i, batch in enumerate(batches):
            sgd.zero_grad()
            loss = batch_loss(reference, batch)
            loss.backward()
            sgd.step()
            total += loss.item()
            for group, (below, above) in zip(sgd.param_groups, pairs, strict=True):
                group["momentum"] = below if loss.item() < total / (i + 1) else above
    assert same_parameters(model, reference)


def test_add_param_group_is_validated_and_parameters_without_grad_are_skipped():
    model, batches = make_problem()
    w1, b1, w2, b2 = model.parameters()
    opt = _lcam([w1, b1])
    with pytest.raises(ValueError, match="Invalid momentum_below value: 1.0"):
        opt.add_param_group({"params": [w2], "momentum_below": 1.0})
    assert len(opt.param_groups) == 1
    opt.add_param_group({"params": [w2, b2], "lr": 0.5})
    assert opt.param_groups[1]["momentum_above"] == 0.9 and opt.param_groups[1]["lr"] == 0.5
    frozen = b2.detach().clone()
    opt.zero_grad()
    loss = batch_loss(model, batches[0])
    loss.backward()
    b2.grad = None
    opt.step(loss=loss)
    assert torch.equal(b2, frozen) and "momentum_buffer" not in opt.state[b2]


@pytest.mark.parametrize("path", list(ALL_PATHS))
@pytest.mark.parametrize("options", [dict(nesterov=True), dict(maximize=True, weight_decay=0.1)])
def test_step_never_modifies_grad(path, options):
    model, batches = make_problem()
    opt = _lcam(model.parameters(), **{**ALL_PATHS[path], **options})
    for batch in batches[:3]:
        opt.zero_grad()
        loss = batch_loss(model, batch)
        loss.backward()
        grads = [p.grad.clone() for p in model.parameters()]
        opt.step(loss=loss)
        assert all(torch.equal(p.grad, g) for p, g in zip(model.parameters(), grads, strict=True))


# -------------------------------------------------------------------------- state_dict
@pytest.mark.parametrize("path", list(ALL_PATHS))
@pytest.mark.parametrize("decision", ["current", "lagged"])
def test_resume_mid_epoch_from_state_dict_continues_bitwise(path, decision):
    model, batches = make_problem(seed=8)
    opt = _lcam(model.parameters(), decision=decision, **ALL_PATHS[path])
    run_lcam(model, opt, batches, epochs=1)
    for batch in batches[:4]:  # mid-epoch
        opt.zero_grad()
        loss = batch_loss(model, batch)
        loss.backward()
        opt.step(loss=loss)
    buffer = io.BytesIO()
    torch.save({"model": model.state_dict(), "opt": opt.state_dict()}, buffer)

    def finish(net, optimizer):
        for batch in batches[4:]:
            optimizer.zero_grad()
            loss = batch_loss(net, batch)
            loss.backward()
            optimizer.step(loss=loss)
        optimizer.end_epoch()
        run_lcam(net, optimizer, batches, epochs=1)

    finish(model, opt)
    buffer.seek(0)
    saved = torch.load(buffer)
    resumed, _ = make_problem(seed=99)  # different weights, overwritten by the load
    resumed.load_state_dict(saved["model"])
    resumed_opt = LCAM(resumed.parameters(), lr=1.0, momentum_above=0.1, momentum_below=0.2,
                       **ALL_PATHS[path])
    resumed_opt.load_state_dict(saved["opt"])
    assert resumed_opt.decision == decision
    assert resumed_opt.param_groups[0]["momentum_below"] == 0.95
    finish(resumed, resumed_opt)
    assert same_parameters(model, resumed)
    assert torch.equal(opt._running_loss.state, resumed_opt._running_loss.state)


def test_statistics_stay_float64_when_loading_into_bf16_params():
    model, batches = make_problem(seed=9)
    model = model.to(torch.bfloat16)
    opt = _lcam(model.parameters())
    for x, y in batches[:5]:
        opt.zero_grad()
        loss = torch.nn.functional.cross_entropy(model(x.bfloat16()).float(), y)
        loss.backward()
        opt.step(loss=loss)
    saved = copy.deepcopy(opt.state_dict())
    fresh = _lcam(model.parameters())
    fresh.load_state_dict(saved)
    assert fresh._running_loss.state.dtype == torch.float64
    assert torch.equal(fresh._running_loss.state, opt._running_loss.state)
    assert all(fresh.state[p]["momentum_buffer"].dtype == torch.bfloat16
               for p in model.parameters())


def test_state_dict_without_newer_flags_loads_and_steps():
    model, batches = make_problem()
    opt = _lcam(model.parameters())
    run_lcam(model, opt, batches[:2], epochs=1)
    saved = opt.state_dict()
    for group in saved["param_groups"]:
        for flag in ("foreach", "fused", "maximize", "nesterov", "dampening"):
            del group[flag]
    fresh = _lcam(model.parameters())
    fresh.load_state_dict(saved)
    assert fresh.param_groups[0]["foreach"] is None and fresh.param_groups[0]["maximize"] is False
    run_lcam(model, fresh, batches[:2], epochs=1)


def test_loading_an_sgd_state_dict_or_a_corrupt_entry_fails_without_changes():
    model, batches = make_problem()
    opt = _lcam(model.parameters())
    run_lcam(model, opt, batches[:3], epochs=1)
    snap = _snapshot(model, opt)
    sgd = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    with pytest.raises(ValueError, match="lacks \\['momentum_above', 'momentum_below'\\]"):
        opt.load_state_dict(sgd.state_dict())
    corrupt = opt.state_dict()
    corrupt["lcam"]["statistics"] = torch.zeros(3)
    corrupt["param_groups"][0]["lr"] = 123.0
    with pytest.raises(ValueError, match="statistics must be a tensor of shape"):
        opt.load_state_dict(corrupt)
    _assert_unchanged(model, opt, snap)
    assert opt.param_groups[0]["lr"] == 0.1


def test_deepcopy_and_pickle_keep_every_setting():
    model, batches = make_problem()
    opt = _lcam(model.parameters(), decision="lagged", loss_average="ema", ema_decay=0.7,
                all_reduce_loss=False, nonfinite_loss="raise", nesterov=True, foreach=True)
    run_lcam(model, opt, batches[:3], epochs=1)
    for clone in (copy.deepcopy(opt), pickle.loads(pickle.dumps(opt))):
        assert (clone.decision, clone.loss_average, clone._running_loss.ema_decay) == (
            "lagged", "ema", 0.7)
        assert clone.all_reduce_loss is False and clone.nonfinite_loss == "raise"
        assert clone.param_groups[0]["nesterov"] is True
        assert clone.param_groups[0]["foreach"] is True
        assert torch.equal(clone._running_loss.state, opt._running_loss.state)


# ------------------------------------------------------------------------- schedulers
SCHEDULERS = {
    "StepLR": lambda o: torch.optim.lr_scheduler.StepLR(o, step_size=2, gamma=0.5),
    "MultiStepLR": lambda o: torch.optim.lr_scheduler.MultiStepLR(o, [1, 3], gamma=0.2),
    "ExponentialLR": lambda o: torch.optim.lr_scheduler.ExponentialLR(o, 0.99985),
    "LambdaLR": lambda o: torch.optim.lr_scheduler.LambdaLR(o, lambda e: 1 / (e + 1)),
    "CosineAnnealingLR": lambda o: torch.optim.lr_scheduler.CosineAnnealingLR(o, T_max=5),
    "OneCycleLR(cycle_momentum=False)": lambda o: torch.optim.lr_scheduler.OneCycleLR(
        o, max_lr=0.2, total_steps=20, cycle_momentum=False),
    "CyclicLR(cycle_momentum=False)": lambda o: torch.optim.lr_scheduler.CyclicLR(
        o, 0.01, 0.1, step_size_up=3, cycle_momentum=False),
}


@pytest.mark.parametrize("name", list(SCHEDULERS))
def test_lr_schedulers_drive_lcam_like_sgd(name):
    model, batches = make_problem(torch.float64)
    reference = copy.deepcopy(model)
    opt = _lcam(model.parameters(), momentum_below=0.9, momentum_above=0.9)
    sgd = torch.optim.SGD(reference.parameters(), lr=0.1, momentum=0.9, weight_decay=5e-4,
                          fused=True)
    sched, ref_sched = SCHEDULERS[name](opt), SCHEDULERS[name](sgd)
    for batch in batches:
        for net, o, s in ((model, opt, sched), (reference, sgd, ref_sched)):
            o.zero_grad()
            loss = batch_loss(net, batch)
            loss.backward()
            o.step(loss=loss) if o is opt else o.step()
            s.step()
    assert opt.param_groups[0]["lr"] == sgd.param_groups[0]["lr"]
    assert same_parameters(model, reference)


def test_reduce_lr_on_plateau_works():
    model, batches = make_problem()
    opt = _lcam(model.parameters())
    sched = torch.optim.lr_scheduler.ReduceLROnPlateau(opt, patience=0, factor=0.5)
    for _ in range(3):
        sched.step(1.0)
    assert opt.param_groups[0]["lr"] < 0.1


@pytest.mark.parametrize("make", [
    lambda o: torch.optim.lr_scheduler.OneCycleLR(o, max_lr=0.2, total_steps=10),
    lambda o: torch.optim.lr_scheduler.CyclicLR(o, 0.01, 0.1),
], ids=["OneCycleLR", "CyclicLR"])
def test_schedulers_that_cycle_momentum_fail_clearly(make):
    model, _ = make_problem()
    opt = _lcam(model.parameters())
    with pytest.raises(ValueError, match="momentum"):
        make(opt)


# -------------------------------------------------------------------------- tensor lr
@pytest.mark.parametrize("path", list(ALL_PATHS))
def test_tensor_lr_is_accepted_like_sgd(path):
    model, batches = make_problem()
    reference = copy.deepcopy(model)
    flags = ALL_PATHS[path]
    opt = _lcam(model.parameters(), lr=torch.tensor(0.1), momentum_above=0.9,
                momentum_below=0.9, **flags)
    sgd = torch.optim.SGD(reference.parameters(), lr=torch.tensor(0.1), momentum=0.9,
                          weight_decay=5e-4, **(flags or {"fused": True}))
    run_lcam(model, opt, batches, epochs=1)
    for batch in batches:
        sgd.zero_grad()
        batch_loss(reference, batch).backward()
        sgd.step()
    assert same_parameters(model, reference)


# -------------------------------------------------------------------------------- AMP
def test_grad_scaler_step_passes_the_loss_and_skipped_steps_change_nothing():
    model, batches = make_problem()
    opt = _lcam(model.parameters())
    scaler = torch.amp.GradScaler("cpu", init_scale=2.0**10)
    for batch in batches[:3]:
        opt.zero_grad()
        loss = batch_loss(model, batch)
        scaler.scale(loss).backward()
        scaler.step(opt, loss=loss)
        scaler.update()
    assert opt.statistics().steps == 3
    snap = _snapshot(model, opt)
    opt.zero_grad()
    loss = batch_loss(model, batches[3])
    scaler.scale(loss).backward()
    next(model.parameters()).grad[0, 0] = float("inf")
    scaler.step(opt, loss=loss)  # found inf: skipped
    scaler.update()
    _assert_unchanged(model, opt, snap)


# -------------------------------------------------------------------------- bad input
@pytest.mark.parametrize("kwargs,error,message", [
    (dict(momentum_above=1.5), ValueError, r"Invalid momentum_above value: 1.5 \(must be in"),
    (dict(momentum_below=-0.1), ValueError, "Invalid momentum_below value: -0.1"),
    (dict(momentum_above=float("nan")), ValueError, "Invalid momentum_above value: nan"),
    (dict(lr=-1.0), ValueError, r"Invalid lr value: -1.0 \(must be >= 0\)"),
    (dict(lr=torch.tensor([0.1, 0.2])), ValueError, "tensor lr must have 1 element"),
    (dict(weight_decay=-1e-4), ValueError, "Invalid weight_decay value"),
    (dict(dampening=1.5), ValueError, "Invalid dampening value"),
    (dict(nesterov=True, momentum_below=0.0), ValueError, "Nesterov momentum requires"),
    (dict(nesterov=True, dampening=0.1), ValueError, "Nesterov momentum requires"),
    (dict(decision="eq9"), ValueError, r"Invalid decision: 'eq9' \(must be one of"),
    (dict(loss_average="median"), ValueError, "Invalid loss_average: 'median'"),
    (dict(ema_decay=1.0), ValueError, "Invalid ema_decay value: 1.0"),
    (dict(nonfinite_loss="ignore"), ValueError, "Invalid nonfinite_loss: 'ignore'"),
    (dict(fused=True, foreach=True), ValueError, "cannot be used together"),
    (dict(momentum_above="0.9"), TypeError, "Invalid momentum_above value: '0.9'"),
])
def test_bad_arguments_raise_clear_errors(kwargs, error, message):
    model, _ = make_problem()
    with pytest.raises(error, match=message):
        _lcam(model.parameters(), **kwargs)


def test_unknown_keyword_fails():
    model, _ = make_problem()
    with pytest.raises(TypeError):
        _lcam(model.parameters(), momentum=0.9)


def test_momenta_are_required():
    model, _ = make_problem()
    with pytest.raises(TypeError, match="momentum_above"):
        LCAM(model.parameters(), lr=0.1, momentum_below=0.9)  # type: ignore[call-arg]


def test_fused_with_complex_params_fails_at_construction():
    p = torch.zeros(3, dtype=torch.complex64, requires_grad=True)
    with pytest.raises(ValueError, match="fused=True needs floating-point parameters"):
        LCAM([p], lr=0.1, momentum_above=0.9, momentum_below=0.9, fused=True)


@pytest.mark.parametrize("call,error,message", [
    (lambda o, loss: o.step(), TypeError, "needs this step's loss"),
    (lambda o, loss: o.step(loss=loss.detach().repeat(4)), ValueError,
     r"scalar loss of this step, got a tensor of shape \(4,\)"),
    (lambda o, loss: o.step(lambda: loss, loss=loss), ValueError, "not both"),
    (lambda o, loss: o.step(loss="1.0"), TypeError, "tensor or a number, got str"),
    (lambda o, loss: o.step(lambda: None), ValueError, "closure returned None"),
])
def test_bad_step_calls_raise_and_change_nothing(call, error, message):
    model, batches = make_problem()
    opt = _lcam(model.parameters())
    run_lcam(model, opt, batches[:2], epochs=1)
    opt.zero_grad()
    loss = batch_loss(model, batches[2])
    loss.backward()
    snap = _snapshot(model, opt)
    with pytest.raises(error, match=message):
        call(opt, loss)
    _assert_unchanged(model, opt, snap)


def test_sparse_gradients_are_rejected_before_any_change():
    emb = torch.nn.Embedding(10, 3, sparse=True)
    opt = LCAM(emb.parameters(), lr=0.1, momentum_above=0.9, momentum_below=0.95)
    loss = emb(torch.tensor([1, 2])).sum()
    loss.backward()
    before = emb.weight.detach().clone()
    with pytest.raises(ValueError, match="does not support sparse gradients"):
        opt.step(loss=loss)
    assert torch.equal(emb.weight, before) and opt.statistics().total_steps == 0


def test_closure_is_run_with_grad_and_its_loss_returned():
    model, batches = make_problem()
    opt = _lcam(model.parameters())

    def closure():
        opt.zero_grad()
        loss = batch_loss(model, batches[0])
        loss.backward()
        return loss

    returned = opt.step(closure)
    assert isinstance(returned, torch.Tensor) and returned.requires_grad
    assert opt.statistics().steps == 1
    loss = closure()
    assert opt.step(loss=loss) is loss


# ------------------------------------------------------------------ non-finite losses
@pytest.mark.parametrize("decision", ["current", "lagged"])
def test_nonfinite_loss_is_left_out_of_the_average_and_counted(decision):
    model, batches = make_problem(torch.float64)
    opt = _lcam(model.parameters(), decision=decision)
    values = []
    for k, batch in enumerate(batches[:6]):
        opt.zero_grad()
        loss = batch_loss(model, batch)
        loss.backward()
        if k in (2, 4):
            opt.step(loss=torch.tensor(float("nan") if k == 2 else float("inf")))
        else:
            opt.step(loss=loss)
            values.append(loss.item())
    stats = opt.statistics()
    assert stats.nonfinite_losses == 2 and stats.steps == 6
    assert stats.loss_average == pytest.approx(sum(values) / len(values), rel=1e-15)


def test_nonfinite_loss_raises_in_strict_mode_without_changes():
    model, batches = make_problem()
    opt = _lcam(model.parameters(), nonfinite_loss="raise")
    run_lcam(model, opt, batches[:2], epochs=1)
    opt.zero_grad()
    batch_loss(model, batches[2]).backward()
    snap = _snapshot(model, opt)
    with pytest.raises(ValueError, match="non-finite loss nan"):
        opt.step(loss=torch.tensor(float("nan")))
    _assert_unchanged(model, opt, snap)


# ---------------------------------------------------------------------- sync-freedom
@pytest.mark.parametrize("hand_off", ["loss=", "record_loss+steps_per_epoch"])
@pytest.mark.parametrize("path", ["default", "foreach"])
@pytest.mark.parametrize("decision", ["current", "lagged"])
@pytest.mark.parametrize("loss_average", ["epoch", "ema"])
def test_step_and_end_epoch_never_read_tensors_on_the_host(
    monkeypatch, path, decision, loss_average, hand_off
):
    model, batches = make_problem()
    recording = hand_off != "loss="
    opt = _lcam(model.parameters(), decision=decision, loss_average=loss_average,
                nesterov=True, steps_per_epoch=3 if recording else None, **ALL_PATHS[path])
    losses = []
    for batch in batches:  # forward/backward outside the patched region
        opt.zero_grad()
        loss = batch_loss(model, batch)
        loss.backward()
        losses.append((loss.detach(), [p.grad.clone() for p in model.parameters()]))

    def forbidden(*args, **kwargs):
        raise AssertionError("host read of a tensor inside LCAM.step")

    with monkeypatch.context() as m:
        for name in ("item", "__bool__", "__float__", "__int__", "tolist"):
            m.setattr(torch.Tensor, name, forbidden)
        for _ in range(2):
            for loss, grads in losses:
                for p, g in zip(model.parameters(), grads, strict=True):
                    p.grad = g
                if recording:  # two micro-batch losses, then a step without a loss
                    opt.record_loss(loss)
                    opt.record_loss(loss * 0.5)
                    opt.step()
                else:
                    opt.step(loss=loss)
            opt.end_epoch()
    stats = opt.statistics()
    assert stats.total_steps == 2 * len(batches)
    if recording:  # 10 steps per epoch: windows of 3, 3, 3, 1 steps, end_epoch() after
        assert (stats.steps, stats.window_index) == (0, 8)


# ----------------------------------------------------------------------------- helpers
def test_balanced_momentum_keeps_the_geometric_mean_of_one_minus_m():
    low = balanced_momentum(0.9, 0.93)
    assert (1 - 0.93) * (1 - low) == pytest.approx((1 - 0.9) ** 2, rel=1e-12)
    assert round(low, 3) == 0.857
    with pytest.raises(ValueError, match="no momentum in \\[0, 1\\) balances"):
        balanced_momentum(0.9, 0.999)


def test_matched_momentum_equalises_the_average_effective_step():
    m = matched_momentum(0.9, 0.95, fraction_above=0.25)
    assert 1 / (1 - m) == pytest.approx(0.25 / 0.1 + 0.75 / 0.05, rel=1e-12)
    assert matched_momentum(0.9, 0.9) == pytest.approx(0.9, rel=1e-12)
    with pytest.raises(ValueError, match="fraction_above"):
        matched_momentum(0.9, 0.95, fraction_above=1.5)
