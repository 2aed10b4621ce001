"""Train a small MLP with lcam_jax: value=loss every step, end_epoch every epoch."""

import jax
import jax.numpy as jnp
import numpy as np
import optax

import lcam_jax


def make_data(n=1024, seed=0):
    """Three Gaussian blobs in 2-d: a classification task that needs no download."""
    rng = np.random.default_rng(seed)
    centers = np.array([[0.0, 2.0], [-2.0, -1.0], [2.0, -1.0]])
    y = rng.integers(0, 3, size=n)
    x = centers[y] + rng.standard_normal((n, 2))
    return x.astype(np.float32), y.astype(np.int32)


def init_params(key, sizes=(2, 32, 3)):
    keys = jax.random.split(key, len(sizes) - 1)
    return [{"w": jax.random.normal(k, (m, n)) / jnp.sqrt(m), "b": jnp.zeros(n)}
            for k, m, n in zip(keys, sizes[:-1], sizes[1:], strict=True)]


def predict(params, x):
    h = x
    for layer in params[:-1]:
        h = jnp.tanh(h @ layer["w"] + layer["b"])
    return h @ params[-1]["w"] + params[-1]["b"]


def loss_fn(params, x, y):
    logits = predict(params, x)
    return optax.softmax_cross_entropy_with_integer_labels(logits, y).mean()


def main(epochs=5, batch_size=64):
    x, y = make_data()
    steps_per_epoch = len(y) // batch_size
    schedule = optax.cosine_decay_schedule(0.1, decay_steps=epochs * steps_per_epoch)
    opt = lcam_jax.lcam(schedule, momentum_above=0.9, momentum_below=0.95,
                        weight_decay=5e-4, decision="lagged")
    params = init_params(jax.random.key(0))
    state = opt.init(params)

    @jax.jit
    def train_step(params, state, xb, yb):
        loss, grads = jax.value_and_grad(loss_fn)(params, xb, yb)
        updates, state = opt.update(grads, state, params, value=loss)  # the step's loss
        return optax.apply_updates(params, updates), state, loss

    history = []
    order_rng = np.random.default_rng(1)
    for epoch in range(epochs):
        order = order_rng.permutation(len(y))
        losses = []
        for i in range(steps_per_epoch):
            idx = order[i * batch_size:(i + 1) * batch_size]
            params, state, loss = train_step(params, state, x[idx], y[idx])
            losses.append(float(loss))
        window = lcam_jax.lcam_state(state)  # this epoch's decisions
        above, below = int(window.steps_above), int(window.steps_below)
        history.append({"epoch": epoch, "loss": float(np.mean(losses)),
                        "steps_above": above, "steps_below": below})
        print(f"epoch {epoch}: mean loss {np.mean(losses):.4f}, "
              f"{above} steps above / {below} below the average")
        state = lcam_jax.end_epoch(state)  # new averaging window
    accuracy = float((jnp.argmax(predict(params, x), axis=1) == y).mean())
    print(f"train accuracy {accuracy:.3f}")
    return history, accuracy


if __name__ == "__main__":
    main()
