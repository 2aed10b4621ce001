"""The fused path's guard: ``torch._fused_sgd_`` is private, so LCAM probes it once per
device and dtype and falls back to the foreach path -- bit for bit -- when a torch
release drops it, changes its arguments or computes something else."""

from __future__ import annotations

import warnings

import pytest
import torch
from lcam_reference import make_problem, run_lcam, same_parameters

from lcam import LCAM
from lcam import _functional as F

CPU = torch.device("cpu")
REAL_KERNEL = torch._fused_sgd_

# Hyperparameters that reach every kernel call the fused path makes.
SETTINGS = {
    "two-sides": dict(momentum_above=0.9, momentum_below=0.95, weight_decay=5e-4),
    "nesterov": dict(momentum_above=0.8, momentum_below=0.9, nesterov=True),
    "zero-side-dampening": dict(momentum_above=0.0, momentum_below=0.9, dampening=0.1,
                                weight_decay=1e-3, maximize=False),
    "one-momentum-maximize": dict(momentum_above=0.9, momentum_below=0.9, maximize=True),
    "no-momentum": dict(momentum_above=0.0, momentum_below=0.0, weight_decay=1e-3),
}


@pytest.fixture(autouse=True)
def fresh_probes(monkeypatch):
    """Each test sees an unprobed process (the verdicts are cached per process)."""
    monkeypatch.setattr(F, "_FUSED_PROBES", {})


# ----------------------------------------------------------------- broken kernels
def _raises(*args, **kwargs):
    raise RuntimeError("\"_fused_sgd_\" not implemented for 'CPU'")


def _other_signature(self, grads, momentum_buffer_list, *, weight_decay, momentum, lr,
                     dampening, nesterov, maximize, first_step, grad_scale=None,
                     found_inf=None):
    """A release that renamed an argument (is_first_step -> first_step)."""
    REAL_KERNEL(self, grads, momentum_buffer_list, weight_decay=weight_decay,
                momentum=momentum, lr=lr, dampening=dampening, nesterov=nesterov,
                maximize=maximize, is_first_step=first_step, grad_scale=grad_scale,
                found_inf=found_inf)


def _ignores_found_inf(*args, found_inf=None, **kwargs):
    """Runs, but no longer skips when found_inf == 1: both momentum sides would apply."""
    REAL_KERNEL(*args, found_inf=None, **kwargs)


def _ignores_dampening(*args, dampening=0.0, **kwargs):
    REAL_KERNEL(*args, dampening=0.0, **kwargs)


def _ignores_nesterov(*args, nesterov=False, **kwargs):
    REAL_KERNEL(*args, nesterov=False, **kwargs)


def _ignores_maximize(*args, maximize=False, **kwargs):
    REAL_KERNEL(*args, maximize=False, **kwargs)


def _off_by_one_ulp(params, *args, **kwargs):
    """Right in every argument, wrong in the last bit: still not the foreach result."""
    REAL_KERNEL(params, *args, **kwargs)
    for p in params:
        p.copy_(torch.nextafter(p, torch.full_like(p, float("inf"))))


BROKEN = {
    "raises": _raises,
    "other-signature": _other_signature,
    "ignores-found_inf": _ignores_found_inf,
    "ignores-dampening": _ignores_dampening,
    "ignores-nesterov": _ignores_nesterov,
    "ignores-maximize": _ignores_maximize,
    "off-by-one-ulp": _off_by_one_ulp,
}
# Kernels that run but compute something else: without the probe they would go unnoticed.
WRONG_RESULT = ("ignores-found_inf", "ignores-dampening", "ignores-nesterov",
                "ignores-maximize", "off-by-one-ulp")


def _break_kernel(monkeypatch, how: str) -> None:
    if how == "missing":
        monkeypatch.delattr(torch, "_fused_sgd_")
    else:
        monkeypatch.setattr(torch, "_fused_sgd_", BROKEN[how])


def _train(settings: dict, dtype=torch.float32, epochs: int = 2, **kwargs):
    model, batches = make_problem(dtype, seed=3)
    opt = LCAM(model.parameters(), lr=0.1, **settings, **kwargs)
    run_lcam(model, opt, batches, epochs)
    return model, opt


def _same_state(a: LCAM, b: LCAM) -> bool:
    sa, sb = a.state_dict()["state"], b.state_dict()["state"]
    return sa.keys() == sb.keys() and all(
        torch.equal(sa[k]["momentum_buffer"], sb[k]["momentum_buffer"]) for k in sa
        if "momentum_buffer" in sa[k] or "momentum_buffer" in sb[k]
    )


# ------------------------------------------------------------------------- tests
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=str)
def test_the_installed_kernel_passes_the_probe(dtype):
    """On the torch under test the fused path really is the fused kernel."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert F.fused_kernel_status(CPU, dtype) == ""


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32, torch.bfloat16,
                                   torch.float16], ids=str)
def test_probe_values_are_exact_in_every_dtype(dtype):
    """The probe compares bit for bit, so its arithmetic must have no rounding at all:
    each dtype's foreach result equals the float64 one."""
    for case in F._PROBE_CASES:
        reference = F._probe_run(False, CPU, torch.float64, case)
        got = F._probe_run(False, CPU, dtype, case)
        assert len(got) == len(reference)
        assert all(torch.equal(g.double(), r) for g, r in zip(got, reference, strict=True))


@pytest.mark.parametrize("setting", SETTINGS)
@pytest.mark.parametrize("how", ["missing", *BROKEN])
def test_a_broken_kernel_falls_back_to_foreach_bit_for_bit(monkeypatch, how, setting):
    expected_model, expected_opt = _train(SETTINGS[setting], foreach=True)
    _break_kernel(monkeypatch, how)
    with pytest.warns(RuntimeWarning, match=r"_fused_sgd_ failed LCAM's probe .*foreach"):
        model, opt = _train(SETTINGS[setting])
    assert F._FUSED_PROBES[(CPU, torch.float32)] != ""
    assert same_parameters(model, expected_model)
    assert _same_state(opt, expected_opt)


@pytest.mark.parametrize("how", WRONG_RESULT)
def test_without_the_probe_the_wrong_kernels_would_change_the_result(monkeypatch, how):
    """The broken kernels above are not harmless: trusted blindly (probe verdict forced
    to "usable"), each one trains to other parameters than the foreach path."""
    settings = {"ignores-nesterov": SETTINGS["nesterov"],
                "ignores-maximize": SETTINGS["one-momentum-maximize"],
                "ignores-dampening": SETTINGS["zero-side-dampening"]}.get(
                    how, SETTINGS["two-sides"])
    expected_model, _ = _train(settings, foreach=True)
    _break_kernel(monkeypatch, how)
    F._FUSED_PROBES[(CPU, torch.float32)] = ""
    model, _ = _train(settings)
    assert not same_parameters(model, expected_model)


def test_explicit_fused_true_falls_back_too(monkeypatch):
    expected_model, _ = _train(SETTINGS["two-sides"], foreach=True)
    _break_kernel(monkeypatch, "raises")
    with pytest.warns(RuntimeWarning, match="_fused_sgd_"):
        model, _ = _train(SETTINGS["two-sides"], fused=True)
    assert same_parameters(model, expected_model)


def test_probe_runs_once_and_warns_once(monkeypatch):
    """One probe per device and dtype per process: later steps and later optimizers
    pay a dictionary lookup, and a broken kernel is never called again."""
    calls = {"probe": 0, "kernel": 0}
    real_probe = F._probe_run

    def counting_probe(*args, **kwargs):
        calls["probe"] += 1
        return real_probe(*args, **kwargs)

    def counting_kernel(*args, **kwargs):
        calls["kernel"] += 1
        _ignores_found_inf(*args, **kwargs)

    monkeypatch.setattr(F, "_probe_run", counting_probe)
    monkeypatch.setattr(torch, "_fused_sgd_", counting_kernel)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        _train(SETTINGS["two-sides"])
        probe_calls, kernel_calls = calls["probe"], calls["kernel"]
        _train(SETTINGS["two-sides"])
        _train(SETTINGS["nesterov"])
    assert 0 < probe_calls <= 2 * len(F._PROBE_CASES)
    assert calls["probe"] == probe_calls
    assert calls["kernel"] == kernel_calls  # never called outside the probe
    assert sum(w.category is RuntimeWarning and "_fused_sgd_" in str(w.message)
               for w in caught) == 1


def test_a_working_kernel_is_probed_once_and_then_used(monkeypatch):
    calls = {"probe": 0}
    real_probe = F._probe_run

    def counting_probe(*args, **kwargs):
        calls["probe"] += 1
        return real_probe(*args, **kwargs)

    monkeypatch.setattr(F, "_probe_run", counting_probe)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        _train(SETTINGS["two-sides"])
        _train(SETTINGS["nesterov"])
    assert calls["probe"] == 2 * len(F._PROBE_CASES)  # fused and foreach, per case
    assert F._FUSED_PROBES == {(CPU, torch.float32): ""}


def test_the_verdict_is_per_dtype(monkeypatch):
    """A kernel broken for float64 only: float32 groups keep the fused kernel (bit for
    bit the default path), float64 groups get the foreach path (bit for bit)."""

    def broken_for_float64(params, *args, **kwargs):
        if params and params[0].dtype == torch.float64:
            raise RuntimeError("\"_fused_sgd_\" not implemented for 'Double'")
        REAL_KERNEL(params, *args, **kwargs)

    def pair(**kwargs):
        m32, batches32 = make_problem(torch.float32, seed=4)
        m64, batches64 = make_problem(torch.float64, seed=5)
        opt = LCAM([{"params": m32.parameters()}, {"params": m64.parameters()}], lr=0.1,
                   momentum_above=0.9, momentum_below=0.95, **kwargs)
        for (x32, y32), (x64, y64) in zip(batches32, batches64, strict=True):
            opt.zero_grad()
            loss = (torch.nn.functional.cross_entropy(m32(x32), y32)
                    + torch.nn.functional.cross_entropy(m64(x64), y64).float())
            loss.backward()
            opt.step(loss=loss)
        return m32, m64

    fused32, _ = pair()
    _, foreach64 = pair(foreach=True)
    monkeypatch.setattr(F, "_FUSED_PROBES", {})  # forget the verdicts of the runs above
    monkeypatch.setattr(torch, "_fused_sgd_", broken_for_float64)
    with pytest.warns(RuntimeWarning, match="float64"):
        got32, got64 = pair()
    assert F._FUSED_PROBES[(CPU, torch.float32)] == ""
    assert F._FUSED_PROBES[(CPU, torch.float64)] != ""
    assert same_parameters(got32, fused32)
    assert same_parameters(got64, foreach64)
