"""lcam_jax across 2 CPU devices (shard_map and pmap), in a subprocess.

``--xla_force_host_platform_device_count`` only works before JAX initialises its
backend, so the check runs in a fresh interpreter with ``XLA_FLAGS`` set; the rest of
this pytest process keeps its single device.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

SCRIPT = r"""
import json
import jax, jax.numpy as jnp, numpy as np, optax
from jax.sharding import PartitionSpec as P
import lcam_jax

assert jax.device_count() == 2, jax.devices()
rng = np.random.default_rng(0)
steps = 12
params = {"w": rng.standard_normal((2, 4, 3)).astype(np.float32)}  # one copy per device
grads = rng.standard_normal((steps, 2, 4, 3)).astype(np.float32)   # different per device
losses = rng.choice([1.0, 2.0, 4.0, 8.0], size=(steps, 2)).astype(np.float32)

def runner(axis_name):
    opt = lcam_jax.lcam(0.1, 0.5, 0.9, weight_decay=1e-3, decision="lagged",
                        axis_name=axis_name)
    def step(p, s, g, loss):
        u, s = opt.update({"w": g}, s, p, value=loss)
        return optax.apply_updates(p, u), s
    return opt, step

def drive(step_fn, opt, place=lambda x: x):
    p = {"w": jnp.asarray(params["w"])}
    p, s = place((p, jax.vmap(opt.init)(p)))
    decisions = []
    for t in range(steps):
        p, s = step_fn(p, s, *place((jnp.asarray(grads[t]), jnp.asarray(losses[t]))))
        decisions.append(np.asarray(lcam_jax.lcam_state(s).last_above).tolist())
        if t == 5:
            s = place(lcam_jax.end_epoch(s))
    return p, s, decisions

mesh = jax.sharding.Mesh(np.array(jax.devices()), ("data",))
def on_blocks(step):  # shard_map hands each device a block with a leading axis of 1
    def f(p, s, g, loss):
        squeeze = lambda x: x[0]
        out = step(*jax.tree.map(squeeze, (p, s, g, loss)))
        return jax.tree.map(lambda x: x[None], out)
    return f

result = {"devices": jax.device_count()}
opt, step = runner("data")
shard = jax.jit(jax.shard_map(on_blocks(step), mesh=mesh, in_specs=P("data"),
                              out_specs=P("data")))
on_mesh = jax.sharding.NamedSharding(mesh, P("data"))
p_sm, s_sm, result["shard_map"] = drive(shard, opt, lambda x: jax.device_put(x, on_mesh))
pmapped = jax.pmap(step, axis_name="data")
p_pm, s_pm, result["pmap"] = drive(pmapped, opt)
for x, y in zip(jax.tree.leaves((p_sm, s_sm)), jax.tree.leaves((p_pm, s_pm)), strict=True):
    np.testing.assert_array_equal(x, y)
result["compiles"] = shard._cache_size()

# Reference: one device per run, fed the mean of the two losses.
ref_opt, ref_step = runner(None)
ref_step = jax.jit(ref_step)
result["reference"] = []
for d in range(2):
    p = {"w": jnp.asarray(params["w"][d])}
    s = ref_opt.init(p)
    dec = []
    for t in range(steps):
        mean = (jnp.asarray(losses[t, 0]) + jnp.asarray(losses[t, 1])) / 2
        p, s = ref_step(p, s, jnp.asarray(grads[t, d]), mean)
        dec.append(bool(lcam_jax.lcam_state(s).last_above))
        if t == 5:
            s = lcam_jax.end_epoch(s)
    np.testing.assert_array_equal(p_sm["w"][d], p["w"])
    result["reference"].append(dec)

# Without axis_name each device decides on its own loss.
own_opt, own_step = runner(None)
_, _, result["own_loss"] = drive(jax.pmap(own_step), own_opt)
print(json.dumps(result))
"""


def test_shard_map_and_pmap_decide_on_the_loss_averaged_over_devices():
    env = dict(os.environ)
    env["XLA_FLAGS"] = (env.get("XLA_FLAGS", "") +
                        " --xla_force_host_platform_device_count=2").strip()
    env["JAX_PLATFORMS"] = "cpu"
    proc = subprocess.run([sys.executable, "-c", SCRIPT], env=env, capture_output=True,
                          text=True, timeout=1200)
    assert proc.returncode == 0, proc.stderr[-4000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["devices"] == 2
    # Params equal the single-device runs fed the mean loss (checked bitwise in the
    # script); both devices took the mean loss's decision at every step.
    expected = [[a, b] for a, b in zip(*result["reference"], strict=True)]
    assert result["reference"][0] == result["reference"][1]
    assert result["shard_map"] == expected
    assert result["pmap"] == expected
    assert {a for a, _ in expected} == {True, False}  # the decision switched
    assert result["compiles"] == 1
    assert any(a != b for a, b in result["own_loss"])  # without axis_name they differ
