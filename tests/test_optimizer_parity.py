"""Bit-for-bit parity of LCAM with torch.optim.SGD and with the paper's reference loops."""

from __future__ import annotations

import itertools

import pytest
import torch
from lcam_reference import (
    IMPLEMENTATIONS,
    SGD_FLAGS_FOR_DEFAULT,
    make_problem,
    max_abs_difference,
    run_demo_loop,
    run_eq9_loop,
    run_lcam,
    run_recurrence_loop,
    same_parameters,
    twin,
)

from lcam import LCAM


def _sgd_configs() -> list[dict[str, float | bool]]:
    """Every combination of SGD options that torch.optim.SGD accepts."""
    configs = []
    for momentum, wd, nesterov, dampening, maximize in itertools.product(
        (0.0, 0.9), (0.0, 1e-2), (False, True), (0.0, 0.3), (False, True)
    ):
        if nesterov and (momentum == 0.0 or dampening != 0.0):
            continue
        configs.append(dict(momentum=momentum, weight_decay=wd, nesterov=nesterov,
                            dampening=dampening, maximize=maximize))
    return configs


SGD_CONFIGS = _sgd_configs()
IMPL_PAIRS = [(name, flags, flags) for name, flags in IMPLEMENTATIONS.items()] + [
    ("default", {}, SGD_FLAGS_FOR_DEFAULT)
]


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=str)
@pytest.mark.parametrize("impl,lcam_flags,sgd_flags", IMPL_PAIRS, ids=[p[0] for p in IMPL_PAIRS])
@pytest.mark.parametrize(
    "config", SGD_CONFIGS, ids=lambda c: "-".join(f"{k}={v}" for k, v in c.items())
)
def test_equal_momenta_match_torch_sgd_bitwise(config, impl, lcam_flags, sgd_flags, dtype):
    model, batches = make_problem(dtype, batches=10)
    reference = twin(model)
    m = config["momentum"]
    options = {k: v for k, v in config.items() if k != "momentum"}
    opt = LCAM(model.parameters(), lr=0.05, momentum_above=m, momentum_below=m,
               decision="lagged", **options, **lcam_flags)
    sgd = torch.optim.SGD(reference.parameters(), lr=0.05, momentum=m, **options, **sgd_flags)
    for _ in range(5):  # 50 steps over 5 epochs
        for batch in batches:
            for net, o in ((model, opt), (reference, sgd)):
                o.zero_grad()
                loss = torch.nn.functional.cross_entropy(net(batch[0]), batch[1])
                loss.backward()
                if o is opt:
                    o.step(loss=loss)
                else:
                    o.step()
        opt.end_epoch()
    assert same_parameters(model, reference)
    for p, q in zip(model.parameters(), reference.parameters(), strict=True):
        mine, theirs = opt.state[p].get("momentum_buffer"), sgd.state[q].get("momentum_buffer")
        assert (mine is None) == (theirs is None)
        if mine is not None:
            assert torch.equal(mine, theirs)


PAIRS = [(0.95, 0.9), (0.9, 0.95), (0.857, 0.93), (0.93, 0.857)]  # (below, above)


# decision mode -> (reference loop, data seed): the demo loop for "lagged", eq. (9)
# for "current"; both drive torch.optim.SGD, starting at the demo's momentum 0.9.
REFERENCE_LOOPS = {"lagged": (run_demo_loop, 1), "current": (run_eq9_loop, 2)}


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=str)
@pytest.mark.parametrize("impl", list(IMPLEMENTATIONS))
@pytest.mark.parametrize("below,above", PAIRS)
@pytest.mark.parametrize("decision", list(REFERENCE_LOOPS))
def test_decision_mode_matches_its_reference_loop_bitwise(decision, below, above, impl, dtype):
    """lagged == the authors' demo loop; current == eq. (9); 4 epochs with end_epoch()."""
    reference_loop, seed = REFERENCE_LOOPS[decision]
    model, batches = make_problem(dtype, seed=seed)
    reference = twin(model)
    flags = IMPLEMENTATIONS[impl]
    opt = LCAM(model.parameters(), lr=0.1, momentum_above=above, momentum_below=below,
               weight_decay=5e-4, decision=decision, **flags)
    sgd = torch.optim.SGD(reference.parameters(), lr=0.1, momentum=0.9, weight_decay=5e-4,
                          **flags)
    mine = run_lcam(model, opt, batches, epochs=4)
    theirs = reference_loop(reference, sgd, batches, epochs=4, below=below, above=above)
    assert mine == theirs
    assert same_parameters(model, reference)


def test_reference_loops_really_switch_momentum():
    """Guard for the tests above: the decisions vary, so a wrong rule would be caught."""
    model, batches = make_problem(torch.float64, seed=1)
    opt = LCAM(model.parameters(), lr=0.1, momentum_above=0.9, momentum_below=0.95,
               decision="lagged")
    run_lcam(model, opt, batches, epochs=3)
    for batch in batches:  # a fourth epoch, read before end_epoch()
        opt.zero_grad()
        loss = torch.nn.functional.cross_entropy(model(batch[0]), batch[1])
        loss.backward()
        opt.step(loss=loss)
    stats = opt.statistics()
    assert stats.steps == len(batches) and stats.total_steps == 4 * len(batches)
    assert 0 < stats.steps_above < stats.steps
    # And swapping the rule (lagged vs current) changes the trajectory.
    a, batches = make_problem(torch.float64, seed=1)
    b = twin(a)
    for net, decision in ((a, "lagged"), (b, "current")):
        opt = LCAM(net.parameters(), lr=0.1, momentum_above=0.9, momentum_below=0.95,
                   decision=decision)
        run_lcam(net, opt, batches, 3)
    assert not same_parameters(a, b)


@pytest.mark.parametrize("below,above", PAIRS)
@pytest.mark.parametrize("decision", ["current", "lagged"])
def test_implementations_agree(below, above, decision):
    models = {}
    for impl, flags in IMPLEMENTATIONS.items():
        model, batches = make_problem(torch.float32, seed=3)
        opt = LCAM(model.parameters(), lr=0.1, momentum_above=above, momentum_below=below,
                   weight_decay=5e-4, nesterov=True, decision=decision, **flags)
        run_lcam(model, opt, batches, epochs=3)
        models[impl] = model
    # for-loop and foreach run the same ops: bitwise. The fused kernel may contract
    # multiply-adds differently: within float32 rounding over 30 steps.
    assert same_parameters(models["forloop"], models["foreach"])
    assert max_abs_difference(models["forloop"], models["fused"]) < 1e-5


@pytest.mark.parametrize("impl", list(IMPLEMENTATIONS) + ["default"])
@pytest.mark.parametrize("dampening", [0.0, 0.3])
@pytest.mark.parametrize("below,above", [(0.0, 0.9), (0.9, 0.0)])
def test_zero_momentum_side_is_plain_sgd_step(below, above, dampening, impl):
    model, batches = make_problem(torch.float64, seed=4)
    reference = twin(model)
    flags = IMPLEMENTATIONS.get(impl, {})
    opt = LCAM(model.parameters(), lr=0.1, momentum_above=above, momentum_below=below,
               dampening=dampening, weight_decay=1e-3, **flags)
    per_epoch: list = []
    mine = run_lcam(model, opt, batches, epochs=3, statistics=per_epoch)
    theirs = run_recurrence_loop(reference, batches, epochs=3, lr=0.1, below=below,
                                 above=above, dampening=dampening, weight_decay=1e-3)
    if impl in ("forloop", "foreach") and dampening == 0.0:  # the same ops: bitwise
        assert mine == theirs
    else:  # fused multiply-adds / a tensor dampening factor: float64 rounding only
        assert mine == pytest.approx(theirs, rel=1e-12, abs=0)
    assert max_abs_difference(model, reference) < 1e-12
    assert sum(s.steps_above for s in per_epoch) > 0
    assert sum(s.steps_below for s in per_epoch) > 0


@pytest.mark.parametrize("impl", list(IMPLEMENTATIONS) + ["default"])
def test_both_momenta_zero_is_sgd_without_momentum(impl):
    model, batches = make_problem(torch.float32, seed=5)
    reference = twin(model)
    flags = IMPLEMENTATIONS.get(impl, {})
    opt = LCAM(model.parameters(), lr=0.1, momentum_above=0.0, momentum_below=0.0,
               dampening=0.5, weight_decay=1e-3, **flags)
    sgd = torch.optim.SGD(reference.parameters(), lr=0.1, momentum=0.0, dampening=0.5,
                          weight_decay=1e-3, **(flags or SGD_FLAGS_FOR_DEFAULT))
    run_lcam(model, opt, batches, epochs=2)
    run_demo_loop(reference, sgd, batches, epochs=2, below=0.0, above=0.0)
    assert same_parameters(model, reference)
    assert all("momentum_buffer" not in opt.state[p] for p in model.parameters())


@pytest.mark.parametrize("impl", ["forloop", "foreach"])
def test_complex_parameters_match_torch_sgd(impl):
    torch.manual_seed(0)
    p = torch.randn(6, 3, dtype=torch.complex64, requires_grad=True)
    q = p.detach().clone().requires_grad_(True)
    flags = IMPLEMENTATIONS[impl]
    opt = LCAM([p], lr=0.05, momentum_above=0.9, momentum_below=0.9, weight_decay=1e-3,
               **flags)
    sgd = torch.optim.SGD([q], lr=0.05, momentum=0.9, weight_decay=1e-3, **flags)
    target = torch.randn(6, 3, dtype=torch.complex64)
    for _ in range(20):
        for t, o in ((p, opt), (q, sgd)):
            o.zero_grad()
            loss = (t - target).abs().pow(2).sum()
            loss.backward()
            o.step(loss=loss) if o is opt else o.step()
    assert torch.equal(p, q)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16], ids=str)
@pytest.mark.parametrize("impl", list(IMPLEMENTATIONS))
def test_low_precision_params_match_sgd_and_keep_float64_statistics(dtype, impl):
    model, batches = make_problem(torch.float32, seed=6)
    model = model.to(dtype)
    reference = twin(model)
    flags = IMPLEMENTATIONS[impl]
    opt = LCAM(model.parameters(), lr=0.05, momentum_above=0.9, momentum_below=0.9,
               weight_decay=1e-3, **flags)
    sgd = torch.optim.SGD(reference.parameters(), lr=0.05, momentum=0.9, weight_decay=1e-3,
                          **flags)
    for _ in range(3):
        for x, y in batches:
            for net, o in ((model, opt), (reference, sgd)):
                o.zero_grad()
                loss = torch.nn.functional.cross_entropy(net(x.to(dtype)).float(), y)
                loss.backward()
                o.step(loss=loss) if o is opt else o.step()
    assert opt._running_loss.state.dtype == torch.float64
    for p in model.parameters():
        assert p.dtype == dtype and opt.state[p]["momentum_buffer"].dtype == dtype
    if impl == "foreach":
        # torch's CPU foreach fallback rounds a Python-float momentum to the parameter
        # dtype; LCAM's 0-dim momentum is float32 (the compute dtype, as on CUDA).
        assert max_abs_difference(model, reference) < 1e-2
    else:
        assert same_parameters(model, reference)
