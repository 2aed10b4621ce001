"""lcam_jax against the PyTorch optimizer ``lcam.LCAM``, in float64.

Needs torch and lcam (and scikit-learn for the digits run); skipped, with the reason,
where they are not installed (a JAX-only environment).
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import lcam_jax

torch = pytest.importorskip("torch", reason="the parity tests compare with PyTorch's lcam.LCAM")
lcam = pytest.importorskip("lcam", reason="the parity tests compare with PyTorch's lcam.LCAM")

SHAPES = [(4, 3), (5,), (2, 2, 3)]
STEPS = 200
WINDOW_ENDS = (69, 129)  # end_epoch after these steps: windows of 70, 60 and 70 steps
LR = 0.05
RTOL = 1e-12


@pytest.fixture(autouse=True, scope="module")
def one_torch_thread():
    """Tiny tensors: torch's thread pool only spins (seconds of CPU on a loaded machine)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)

# One table of optimizer settings; each runs in both decision modes and both averages.
CONFIGS = {
    "dampening": dict(momentum_above=0.9, momentum_below=0.95, weight_decay=5e-4,
                      dampening=0.1),
    "nesterov": dict(momentum_above=0.9, momentum_below=0.99, weight_decay=5e-4,
                     nesterov=True),
    "zero-side": dict(momentum_above=0.0, momentum_below=0.9, weight_decay=1e-3,
                      dampening=0.2),
}
MODES = [(d, a) for d in lcam_jax.DECISIONS for a in lcam_jax.LOSS_AVERAGES]


def problem(seed: int = 0):
    """Initial params, 200 steps of gradients and losses with ties, NaN and inf."""
    rng = np.random.default_rng(seed)
    init = [rng.standard_normal(s) for s in SHAPES]
    grads = [[rng.standard_normal(s) for s in SHAPES] for _ in range(STEPS)]
    # Few distinct values: the loss often equals the running mean exactly (ties).
    losses = rng.choice([1.0, 2.0, 3.0], size=STEPS)
    losses[[17, 90]] = math.nan
    losses[150] = math.inf
    return init, grads, losses


def run_torch(config, decision, loss_average, init, grads, losses):
    params = [torch.tensor(x, requires_grad=True) for x in init]
    opt = lcam.LCAM(params, lr=LR, decision=decision, loss_average=loss_average, **config)
    decisions, windows = [], []
    for t in range(STEPS):
        for p, g in zip(params, grads[t], strict=True):
            p.grad = torch.tensor(g)
        before = opt.statistics().steps_above
        opt.step(loss=float(losses[t]))
        decisions.append(opt.statistics().steps_above > before)
        if t in WINDOW_ENDS or t == STEPS - 1:
            windows.append(opt.statistics())
            opt.end_epoch()
    return [p.detach().numpy() for p in params], decisions, windows


def run_jax(config, decision, loss_average, init, grads, losses):
    opt = lcam_jax.lcam(LR, decision=decision, loss_average=loss_average, **config)
    ends = np.zeros(STEPS, bool)
    ends[list(WINDOW_ENDS) + [STEPS - 1]] = True

    def body(carry, xs):
        params, state = carry
        g, loss, end = xs
        updates, state = opt.update(g, state, params, value=loss)
        params = optax.apply_updates(params, updates)
        inner = lcam_jax.lcam_state(state)
        record = (inner.last_above, inner.steps_above, inner.steps_below,
                  inner.nonfinite_losses, inner.loss_sum, inner.finite_losses, inner.loss_ema)
        state = jax.lax.cond(end, lcam_jax.end_epoch, lambda s: s, state)
        return (params, state), record

    @jax.jit
    def run(params, xs):
        return jax.lax.scan(body, (params, opt.init(params)), xs)

    stacked = [jnp.asarray(np.stack([g[i] for g in grads])) for i in range(len(SHAPES))]
    (params, _), record = run([jnp.asarray(x) for x in init],
                              (stacked, jnp.asarray(losses), jnp.asarray(ends)))
    return [np.asarray(p) for p in params], np.asarray(record[0]).tolist(), record, ends


@pytest.mark.parametrize("decision,loss_average", MODES)
@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_matches_torch_lcam_in_float64_over_three_windows(x64, name, decision, loss_average):
    init, grads, losses = problem()
    config = CONFIGS[name]
    t_params, t_decisions, t_windows = run_torch(config, decision, loss_average,
                                                 init, grads, losses)
    j_params, j_decisions, record, ends = run_jax(config, decision, loss_average,
                                                  init, grads, losses)
    assert j_decisions == t_decisions
    assert 0 < sum(t_decisions) < STEPS  # both momenta were used
    for w, t in enumerate(np.flatnonzero(ends)):
        stats = t_windows[w]
        above, below, nonfinite, loss_sum, count, ema = (np.asarray(r[t]) for r in record[1:])
        assert (int(above), int(below), int(nonfinite)) == (
            stats.steps_above, stats.steps_below, stats.nonfinite_losses)
        average = loss_sum / count if loss_average == "epoch" else ema
        np.testing.assert_allclose(average, stats.loss_average, rtol=RTOL, atol=0)
    worst = 0.0
    for a, b in zip(j_params, t_params, strict=True):
        assert a.dtype == b.dtype == np.float64
        np.testing.assert_allclose(a, b, rtol=RTOL, atol=0)
        worst = max(worst, float(np.max(np.abs(a - b) / np.abs(b))))
    print(f"{name} {decision} {loss_average}: max relative difference {worst:.1e}")


def test_digits_mlp_takes_the_same_decisions_in_both_frameworks(x64):
    """A real run: MLP on sklearn's digits, same initial weights and batches."""
    datasets = pytest.importorskip("sklearn.datasets", reason="the digits data set")
    digits = datasets.load_digits()
    x_all = (digits.data / 16.0).astype(np.float64)
    y_all = digits.target.astype(np.int64)
    order = np.random.default_rng(0).permutation(len(y_all))
    batch, epochs = 128, 3
    batches = [order[i:i + batch] for i in range(0, len(order) - batch + 1, batch)]

    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(64, 32), torch.nn.Tanh(),
                                torch.nn.Linear(32, 10)).double()
    init = [p.detach().numpy().copy() for p in model.parameters()]  # w1, b1, w2, b2

    def jax_loss(params, x, y):
        w1, b1, w2, b2 = params
        logits = jnp.tanh(x @ w1.T + b1) @ w2.T + b2
        return -jnp.mean(jnp.take_along_axis(jax.nn.log_softmax(logits), y[:, None], 1))

    for decision in lcam_jax.DECISIONS:
        kwargs = dict(momentum_above=0.9, momentum_below=0.95, weight_decay=5e-4,
                      decision=decision)
        with torch.no_grad():
            for p, w in zip(model.parameters(), init, strict=True):
                p.copy_(torch.from_numpy(w))
        opt = lcam.LCAM(model.parameters(), lr=0.2, **kwargs)
        jopt = lcam_jax.lcam(0.2, **kwargs)

        @jax.jit
        def step(params, state, x, y, jopt=jopt):
            loss, grads = jax.value_and_grad(jax_loss)(params, x, y)
            updates, state = jopt.update(grads, state, params, value=loss)
            return optax.apply_updates(params, updates), state, loss

        params = [jnp.asarray(w) for w in init]
        state = jopt.init(params)
        t_decisions, j_decisions, t_losses = [], [], []
        for _ in range(epochs):
            for idx in batches:
                x, y = torch.from_numpy(x_all[idx]), torch.from_numpy(y_all[idx])
                opt.zero_grad()
                loss = torch.nn.functional.cross_entropy(model(x), y)
                loss.backward()
                before = opt.statistics().steps_above
                opt.step(loss=loss)
                t_decisions.append(opt.statistics().steps_above > before)
                t_losses.append(loss.item())
                params, state, _ = step(params, state, x_all[idx], y_all[idx])
                j_decisions.append(bool(lcam_jax.lcam_state(state).last_above))
            opt.end_epoch()
            state = lcam_jax.end_epoch(state)
        assert j_decisions == t_decisions
        assert 0 < sum(t_decisions) < len(t_decisions)
        assert t_losses[-1] < 0.5 * t_losses[0]  # it trained
        worst = 0.0
        for a, b in zip(params, model.parameters(), strict=True):
            a, b = np.asarray(a), b.detach().numpy()
            np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-12)
            worst = max(worst, float(np.max(np.abs(a - b))))
        print(f"digits {decision}: {len(t_decisions)} steps, {sum(t_decisions)} above, "
              f"max absolute parameter difference {worst:.1e}")


# The torch optimizer's own messages for the same bad values (lr is called
# learning_rate in optax, so it is checked in test_jax_transform.py only).
BAD = [dict(momentum_above=1.5), dict(momentum_below=-0.1), dict(momentum_above="0.9"),
       dict(dampening=1.5), dict(ema_decay=1.0), dict(decision="eq9"),
       dict(loss_average="mean"), dict(weight_decay=-1.0),
       dict(nesterov=True, dampening=0.1), dict(nesterov=True, momentum_above=0.0)]


@pytest.mark.parametrize("bad", BAD, ids=lambda b: "-".join(map(str, b.values())))
def test_invalid_arguments_raise_the_torch_optimizers_messages(bad):
    kwargs = dict(momentum_above=0.9, momentum_below=0.95) | bad
    with pytest.raises((ValueError, TypeError)) as theirs:
        lcam.LCAM([torch.zeros(1, requires_grad=True)], lr=0.1, **kwargs)
    with pytest.raises(theirs.type) as ours:
        lcam_jax.lcam(0.1, **kwargs)
    assert str(ours.value) == str(theirs.value)


def test_benchmark_shapes_are_the_torch_wrn_28_10_parameter_shapes():
    import importlib.util
    from pathlib import Path

    from lcam.harness.models.wrn import WideResNet

    path = Path(__file__).resolve().parents[1] / "benchmarks" / "jax_update_overhead.py"
    spec = importlib.util.spec_from_file_location("jax_update_overhead", path)
    assert spec is not None and spec.loader is not None
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    with torch.device("meta"):
        model = WideResNet(depth=28, width=10, num_classes=10)
    assert bench.WRN_28_10_SHAPES == [tuple(p.shape) for p in model.parameters()]
