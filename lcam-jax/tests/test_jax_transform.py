"""lcam_jax on its own (no torch): decisions, equality with optax.sgd, jit, vmap, state."""

from __future__ import annotations

import functools
import math
import re

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from jax_problems import random_tree

import lcam_jax

# Two windows of hand-picked losses: ties (the first loss of a window equals its mean),
# a NaN and dyadic values, so every mean and EMA (decay 0.5) below is exact.
LOSSES = [[2.0, 1.0, 3.0, 1.0], [math.nan, 5.0, 1.0]]
# Decisions (True = momentum_above) worked out by hand from the README's rules.
EXPECTED_DECISIONS = {
    # eq. (9): loss > mean including it; ties -> below; NaN -> above.
    ("current", "epoch"): [False, False, True, False, True, False, False],
    # The EMA is not restarted: at step 6 it is 3.3125 < 5 (the window mean would be 5).
    ("current", "ema"): [False, False, True, False, True, True, False],
    # Previous step's comparison; ties -> above; the decision after step 4 (1 < 1.75)
    # carries across end_epoch; the NaN keeps the pending decision.
    ("lagged", "epoch"): [True, True, False, True, False, False, True],
    ("lagged", "ema"): [True, True, False, True, False, False, True],
}


@pytest.mark.parametrize("decision,loss_average", sorted(EXPECTED_DECISIONS))
def test_decisions_and_momentum_follow_the_documented_rules(decision, loss_average):
    above, below = 0.5, 0.25
    opt = lcam_jax.lcam(1.0, above, below, decision=decision, loss_average=loss_average,
                        ema_decay=0.5)
    params = {"p": jnp.zeros(())}
    state = opt.init(params)
    decisions, buf = [], 0.0
    for w, window in enumerate(LOSSES):
        for loss in window:
            updates, state = opt.update({"p": jnp.ones(())}, state, params, value=loss)
            used_above = bool(lcam_jax.lcam_state(state).last_above)
            decisions.append(used_above)
            # buf = m * buf + g with g = 1 (buf starts at g), update = -lr * buf: exact.
            buf = 1.0 if len(decisions) == 1 else (above if used_above else below) * buf + 1.0
            assert float(updates["p"]) == -buf
        inner = lcam_jax.lcam_state(state)
        if w == 1:  # window statistics before the restart
            assert (int(inner.steps_above), int(inner.steps_below)) == (
                sum(decisions[4:]), 3 - sum(decisions[4:]))
            assert int(inner.nonfinite_losses) == 1
            assert (float(inner.loss_sum), int(inner.finite_losses)) == (6.0, 2)
            assert float(inner.loss_ema) == 2.15625  # 2, 1.5, 2.25, 1.625, -, 3.3125, 2.15625
        state = lcam_jax.end_epoch(state)
    assert decisions == EXPECTED_DECISIONS[(decision, loss_average)]
    assert int(lcam_jax.lcam_state(state).total_steps) == 7


# Equal momenta: lcam == optax.sgd (+ add_decayed_weights), compared with array_equal.
SGD_CASES = [
    dict(momentum=0.9, nesterov=False, weight_decay=0.0, schedule=False, dtype=np.float32),
    dict(momentum=0.9, nesterov=True, weight_decay=5e-4, schedule=True, dtype=np.float32),
    dict(momentum=0.0, nesterov=False, weight_decay=5e-4, schedule=False, dtype=np.float32),
    dict(momentum=0.95, nesterov=True, weight_decay=1e-3, schedule=False, dtype=np.float64),
]


@pytest.mark.parametrize("case", SGD_CASES, ids=lambda c: "-".join(f"{v}" for v in c.values()))
def test_equal_momenta_equals_optax_sgd_bitwise(case):
    lr = optax.cosine_decay_schedule(0.1, decay_steps=20) if case["schedule"] else 0.1
    m, wd = case["momentum"], case["weight_decay"]
    ours = lcam_jax.lcam(lr, m, m, weight_decay=wd, nesterov=case["nesterov"])
    sgd = optax.sgd(lr, momentum=m, nesterov=case["nesterov"])
    theirs = optax.chain(optax.add_decayed_weights(wd), sgd) if wd else sgd
    rng = np.random.default_rng(1)
    with jax.enable_x64(case["dtype"] == np.float64):
        def run(opt, extra):
            @jax.jit
            def step(params, state, grads, loss):
                updates, state = opt.update(grads, state, params, **extra(loss))
                return optax.apply_updates(params, updates), state
            return step

        step_ours = run(ours, lambda loss: {"value": loss})
        step_theirs = run(theirs, lambda loss: {})
        start = jax.tree.map(jnp.asarray, random_tree(rng, case["dtype"]))
        a, b = start, start
        state_a, state_b = ours.init(start), theirs.init(start)
        for t in range(20):
            grads = jax.tree.map(jnp.asarray, random_tree(rng, case["dtype"]))
            a, state_a = step_ours(a, state_a, grads, jnp.asarray(1.0 + t % 3))
            b, state_b = step_theirs(b, state_b, grads, None)
        for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True):
            assert x.dtype == case["dtype"]
            np.testing.assert_array_equal(x, y)
        assert not np.array_equal(a["w"], start["w"])


def step_function(opt):
    def step(params, state, grads, loss):
        updates, state = opt.update(grads, state, params, value=loss)
        return optax.apply_updates(params, updates), state
    return step


def make_step(opt):
    return jax.jit(step_function(opt))


def test_jit_traces_once_while_the_decision_switches_with_donated_state():
    opt = lcam_jax.lcam(0.1, 0.9, 0.99, weight_decay=1e-4, dampening=0.1, decision="lagged")
    traces = []

    # Donated, as a training loop would: the state holds no buffer twice.
    @functools.partial(jax.jit, donate_argnums=(0, 1))
    def step(params, state, grads, loss):
        traces.append(1)  # runs only when jax traces (compiles) the function
        updates, state = opt.update(grads, state, params, value=loss)
        return optax.apply_updates(params, updates), state

    rng = np.random.default_rng(2)
    params = jax.tree.map(jnp.asarray, random_tree(rng))
    state = opt.init(params)
    decisions = []
    for t in range(16):
        grads = jax.tree.map(jnp.asarray, random_tree(rng))
        params, state = step(params, state, grads, [3.0, 1.0, 2.0, math.inf][t % 4])
        decisions.append(bool(lcam_jax.lcam_state(state).last_above))
        if t % 5 == 4:
            state = lcam_jax.end_epoch(state)
    assert set(decisions) == {True, False}
    switches = sum(a != b for a, b in zip(decisions[:-1], decisions[1:], strict=True))
    assert switches >= 6  # it switched often
    assert len(traces) == 1
    assert step._cache_size() == 1


def test_vmap_runs_independent_optimizers_like_separate_runs():
    opt = lcam_jax.lcam(0.1, 0.8, 0.95, weight_decay=1e-3, nesterov=True)
    step = make_step(opt)
    batched_step = jax.jit(jax.vmap(step))
    rng = np.random.default_rng(3)
    runs = 3
    params = [jax.tree.map(jnp.asarray, random_tree(rng)) for _ in range(runs)]
    states = [opt.init(p) for p in params]
    stack = lambda trees: jax.tree.map(lambda *xs: jnp.stack(xs), *trees)  # noqa: E731
    bparams, bstate = stack(params), jax.vmap(opt.init)(stack(params))
    losses = rng.choice([1.0, 2.0, 3.0], size=(12, runs)).astype(np.float32)
    for t in range(12):
        grads = [jax.tree.map(jnp.asarray, random_tree(rng)) for _ in range(runs)]
        for r in range(runs):
            params[r], states[r] = step(params[r], states[r], grads[r], losses[t, r])
        bparams, bstate = batched_step(bparams, bstate, stack(grads), jnp.asarray(losses[t]))
        if t == 5:
            states = [lcam_jax.end_epoch(s) for s in states]
            bstate = lcam_jax.end_epoch(bstate)
    for r in range(runs):
        for x, y in zip(jax.tree.leaves(params[r]), jax.tree.leaves(bparams), strict=True):
            np.testing.assert_array_equal(x, y[r])
        for x, y in zip(jax.tree.leaves(states[r]), jax.tree.leaves(bstate), strict=True):
            np.testing.assert_array_equal(x, y[r])
    above = lcam_jax.lcam_state(bstate).steps_above
    assert len(set(np.asarray(above).tolist())) > 1  # the runs really decided on their own


def test_axis_name_decides_on_the_mean_loss_of_the_axis():
    """vmap with an axis name stands in for devices: every member gets the mean's decision."""
    shared = lcam_jax.lcam(0.1, 0.5, 0.9, axis_name="runs")
    alone = lcam_jax.lcam(0.1, 0.5, 0.9)
    step_shared = jax.jit(jax.vmap(step_function(shared), axis_name="runs"))
    step_alone = make_step(alone)
    rng = np.random.default_rng(4)
    p = jax.tree.map(jnp.asarray, random_tree(rng))
    bp = jax.tree.map(lambda x: jnp.stack([x, x]), p)
    bs, s = jax.vmap(shared.init)(bp), alone.init(p)
    for _ in range(10):
        g = jax.tree.map(jnp.asarray, random_tree(rng))
        pair = jnp.asarray(rng.choice([1.0, 2.0, 4.0], size=2), jnp.float32)
        bp, bs = step_shared(bp, bs, jax.tree.map(lambda x: jnp.stack([x, x]), g), pair)
        p, s = step_alone(p, s, g, (pair[0] + pair[1]) / 2)
    for x, y in zip(jax.tree.leaves((p, s)), jax.tree.leaves((bp, bs)), strict=True):
        np.testing.assert_array_equal(y[0], x)
        np.testing.assert_array_equal(y[1], x)


def test_end_epoch_is_pure_and_finds_the_state_inside_other_states():
    opt = lcam_jax.lcam(0.1, 0.9, 0.95, weight_decay=1e-4)
    wrapped = optax.chain(optax.clip_by_global_norm(1.0), opt)
    params = {"p": jnp.ones(3)}
    state = wrapped.init(params)
    for loss in (2.0, 1.0, math.nan):
        _, state = wrapped.update({"p": jnp.ones(3)}, state, params, value=loss)
    before = lcam_jax.lcam_state(state)
    restarted = lcam_jax.end_epoch(state)
    after = lcam_jax.lcam_state(restarted)
    assert jax.tree.structure(restarted) == jax.tree.structure(state)
    assert (int(before.steps_above), int(before.steps_below)) == (1, 2)  # given unchanged
    for field in ("loss_sum", "finite_losses", "steps_above", "steps_below",
                  "nonfinite_losses"):
        assert float(getattr(after, field)) == 0.0
    for field in ("loss_ema", "ema_started", "pending_above", "last_above", "total_steps"):
        np.testing.assert_array_equal(getattr(after, field), getattr(before, field))
    np.testing.assert_array_equal(after.trace["p"], before.trace["p"])
    jitted = jax.jit(lcam_jax.end_epoch)(state)
    for x, y in zip(jax.tree.leaves(jitted), jax.tree.leaves(restarted), strict=True):
        np.testing.assert_array_equal(x, y)


def test_end_epoch_and_lcam_state_reject_states_without_lcam():
    state = optax.sgd(0.1, momentum=0.9).init({"p": jnp.ones(2)})
    with pytest.raises(ValueError, match="no ScaleByLCAMState found in the given tuple"):
        lcam_jax.end_epoch(state)
    with pytest.raises(ValueError, match="no ScaleByLCAMState found"):
        lcam_jax.lcam_state(state)
    two = (lcam_jax.scale_by_lcam(0.9, 0.95).init({}),) * 2
    with pytest.raises(ValueError, match="contains 2 LCAM states"):
        lcam_jax.lcam_state(two)


def test_zero_momenta_keep_no_trace_and_equal_plain_sgd():
    opt = lcam_jax.lcam(0.5, 0.0, 0.0, weight_decay=0.25)
    params = {"p": jnp.asarray([1.0, -2.0])}
    state = opt.init(params)
    assert lcam_jax.lcam_state(state).trace == ()
    updates, _ = opt.update({"p": jnp.asarray([0.5, 0.5])}, state, params, value=1.0)
    np.testing.assert_array_equal(updates["p"], [-0.375, -0.0])  # -lr * (g + wd * p)


def test_zero_momentum_side_restarts_the_trace_from_the_gradient():
    # above == 0: a step above the mean is plain SGD and the trace restarts from d,
    # dampening not applied (as torch's SGD with momentum 0).
    opt = lcam_jax.scale_by_lcam(0.0, 0.5, dampening=0.5)
    state = opt.init({"p": jnp.zeros(())})
    outs = []
    # losses: below (tie), below (tie), above, below
    for loss, grad in zip((1.0, 1.0, 3.0, 0.0), (1.0, 2.0, 4.0, 8.0), strict=True):
        u, state = opt.update({"p": jnp.asarray(grad)}, state, value=loss)
        outs.append(float(u["p"]))
    # buf = d on the first step; 0.5*1 + 0.5*2; restart at d = 4 (not 0.5*4); 0.5*4 + 0.5*8
    assert outs == [1.0, 1.5, 4.0, 6.0]


def test_statistics_dtype_follows_x64():
    opt = lcam_jax.scale_by_lcam(0.9, 0.95)
    assert opt.init({}).loss_sum.dtype == jnp.float32
    with jax.enable_x64(True):
        state = opt.init({})
        assert state.loss_sum.dtype == jnp.float64
        _, state = opt.update({}, state, value=np.float32(0.1))
        assert float(state.loss_sum) == float(np.float32(0.1))  # cast, not rounded twice


def test_update_needs_a_scalar_loss():
    opt = lcam_jax.scale_by_lcam(0.9, 0.95)
    state = opt.init({"p": jnp.ones(2)})
    with pytest.raises(ValueError, match=r"scalar loss of this step as value=\.\.\., got an "
                                         r"array of shape \(2,\)"):
        opt.update({"p": jnp.ones(2)}, state, value=jnp.ones(2))
    with pytest.raises(ValueError, match="real-valued loss"):
        opt.update({"p": jnp.ones(2)}, state, value=1j)
    with pytest.raises(TypeError, match="value"):
        opt.update({"p": jnp.ones(2)}, state)
    # A chain hands extra arguments meant for other transformations to everyone.
    _, state = opt.update({"p": jnp.ones(2)}, state, value=jnp.ones((1, 1)), other=3)
    assert int(state.total_steps) == 1


BAD_ARGUMENTS = [
    (dict(momentum_above=1.5), ValueError,
     "Invalid momentum_above value: 1.5 (must be in [0, 1))"),
    (dict(momentum_below=-0.1), ValueError,
     "Invalid momentum_below value: -0.1 (must be in [0, 1))"),
    (dict(momentum_above="0.9"), TypeError,
     "Invalid momentum_above value: '0.9' (must be a number in [0, 1))"),
    (dict(dampening=1.5), ValueError, "Invalid dampening value: 1.5 (must be in [0, 1])"),
    (dict(ema_decay=1.0), ValueError, "Invalid ema_decay value: 1.0 (must be in [0, 1))"),
    (dict(decision="eq9"), ValueError,
     "Invalid decision: 'eq9' (must be one of ('current', 'lagged'))"),
    (dict(loss_average="mean"), ValueError,
     "Invalid loss_average: 'mean' (must be one of ('epoch', 'ema'))"),
    (dict(weight_decay=-1.0), ValueError,
     "Invalid weight_decay value: -1.0 (must be a number >= 0)"),
    (dict(nesterov=True, dampening=0.1), ValueError,
     "Nesterov momentum requires momentum_above > 0, momentum_below > 0 and dampening == 0 "
     "(got momentum_above=0.9, momentum_below=0.95, dampening=0.1); pass nesterov=False or "
     "change those values"),
    (dict(nesterov=True, momentum_below=0.0), ValueError,
     "Nesterov momentum requires momentum_above > 0, momentum_below > 0"),
]


@pytest.mark.parametrize("bad,error,message", BAD_ARGUMENTS)
def test_invalid_arguments_raise_with_the_bad_value_and_the_range(bad, error, message):
    kwargs = dict(momentum_above=0.9, momentum_below=0.95) | bad
    with pytest.raises(error) as info:
        lcam_jax.lcam(0.1, **kwargs)
    assert str(info.value).startswith(message)
    if "weight_decay" not in bad:  # scale_by_lcam has no weight decay
        with pytest.raises(error, match="^" + re.escape(message)):
            lcam_jax.scale_by_lcam(**kwargs)


def test_invalid_learning_rate_raises():
    with pytest.raises(ValueError, match=r"Invalid learning_rate value: -0\.1 \(must be >= 0\)"):
        lcam_jax.lcam(-0.1, 0.9, 0.95)
    with pytest.raises(TypeError, match="Invalid learning_rate value: 'fast'"):
        lcam_jax.lcam("fast", 0.9, 0.95)
    for accepted in (jnp.asarray(0.1), optax.constant_schedule(0.1)):
        assert isinstance(lcam_jax.lcam(accepted, 0.9, 0.95),
                          optax.GradientTransformationExtraArgs)


def test_inject_hyperparams_with_static_options_and_end_epoch_inside_it():
    options = ("momentum_above", "momentum_below", "weight_decay", "dampening", "ema_decay")
    opt = optax.inject_hyperparams(lcam_jax.lcam, static_args=options)(
        learning_rate=0.5, momentum_above=0.5, momentum_below=0.25, weight_decay=0.0)
    plain = lcam_jax.lcam(0.5, 0.5, 0.25)
    params = {"p": jnp.zeros(())}
    state, expected = opt.init(params), plain.init(params)
    step, plain_step = make_step(opt), make_step(plain)
    for loss in (2.0, 1.0, 3.0):
        new, state = step(params, state, {"p": jnp.ones(())}, loss)  # lr traced under jit
        want, expected = plain_step(params, expected, {"p": jnp.ones(())}, loss)
        assert float(new["p"]) == float(want["p"])
    state = lcam_jax.end_epoch(state)  # found inside InjectStatefulHyperparamsState
    inner = lcam_jax.lcam_state(state)
    assert (int(inner.steps_above), int(inner.total_steps)) == (0, 3)
    traced = optax.inject_hyperparams(lcam_jax.lcam, static_args=options[1:])(
        learning_rate=0.5, momentum_above=0.5, momentum_below=0.25)
    traced_state = traced.init(params)  # concrete here: fine
    with pytest.raises(TypeError, match="list 'momentum_above' in static_args"):
        make_step(traced)(params, traced_state, {"p": jnp.ones(())}, 1.0)
