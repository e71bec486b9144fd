"""The seed training steps in JAX, as a JAX expert writes them: the whole step (forward, backward
and the optax update) is one ``jax.jit`` function whose parameter and optimizer-state buffers
are donated, so XLA updates them in place; ``float(loss)`` waits for the result as every other
runner's ``loss.item()`` does. The first call compiles (reported as first-call latency).

Optional: needs ``jax`` and ``optax`` (``pip install -e ".[bench]"``); `available()` says
whether they import. Input noise is drawn with torch's generator outside the jitted step, so
this runner sees the same noisy images as the PyTorch and optimus runners. The step computes
on the CPU (its parameters are placed there) even where JAX has a GPU.
"""
from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch

Step = Callable[[dict], float]


def available() -> bool:
    try:
        import jax  # noqa: F401
        import optax  # noqa: F401
    except ImportError:
        return False
    return True


def _conv(x, w, b, padding):
    import jax
    y = jax.lax.conv_general_dilated(x, w, (1, 1), padding,
                                     dimension_numbers=("NCHW", "OIHW", "NCHW"))
    return y + b[None, :, None, None]


def _max_pool2(x):
    import jax
    import jax.numpy as jnp
    return jax.lax.reduce_window(x, -jnp.inf, jax.lax.max, (1, 1, 2, 2), (1, 1, 2, 2), "VALID")


def _xent(z, y):
    import optax
    return optax.softmax_cross_entropy_with_integer_labels(z, y).mean()


def seed000_loss(p, x, y):
    """Conv 15@9×9, max-pool 2, relu, affine 1500→512 relu, 512→10."""
    import jax
    h = jax.nn.relu(_max_pool2(_conv(x, p["conv.weights"], p["conv.bias"], "VALID")))
    h = jax.nn.relu(h.reshape(h.shape[0], -1) @ p["affine.weights"] + p["affine.bias"])
    return _xent(h @ p["classifier.weights"] + p["classifier.bias"], y)


def seed001_loss(p, x, y):
    import jax
    h = jax.nn.sigmoid(x @ p["hidden.weights"] + p["hidden.bias"])
    return _xent(h @ p["output.weights"] + p["output.bias"], y)


def seed002_loss(l2: float):
    def loss(p, x, y):
        import jax
        import jax.numpy as jnp
        w1, w2 = p["input_to_hidden.weights"], p["hidden_to_output.weights"]
        h = jax.nn.relu(x @ w1 + p["input_to_hidden.bias"])
        z = h @ w2 + p["hidden_to_output.bias"]
        return _xent(z, y) + l2 * (jnp.vdot(w1, w1) + jnp.vdot(w2, w2))
    return loss


def seed004_loss(p, x, y):
    """3 × (conv 3×3 pad 1, relu, max-pool 2) 16/32/32, dense 288→10."""
    import jax
    h = x
    for i in range(3):
        h = _max_pool2(jax.nn.relu(_conv(h, p[f"conv{i}.weights"], p[f"conv{i}.bias"],
                                         ((1, 1), (1, 1)))))
    return _xent(h.reshape(h.shape[0], -1) @ p["dense.weights"] + p["dense.bias"], y)


def runner(loss_fn: Callable, params: dict[str, np.ndarray], rule: str, lr: float,
           noise: float = 0.0) -> Step:
    """``step(batch) -> loss`` training ``loss_fn(params, x, y)`` with optax SGD or Adam."""
    import jax
    import jax.numpy as jnp
    import optax

    opt = optax.sgd(lr) if rule == "sgd" else optax.adam(lr)
    cpu = jax.devices("cpu")[0]  # the CPU peer, also where JAX would default to a GPU
    state = {"params": {k: jax.device_put(jnp.asarray(v), cpu) for k, v in params.items()}}
    state["opt"] = opt.init(state["params"])

    def train(p, opt_state, x, y):
        loss, grads = jax.value_and_grad(loss_fn)(p, x, y)
        updates, opt_state = opt.update(grads, opt_state, p)
        return optax.apply_updates(p, updates), opt_state, loss

    train = jax.jit(train, donate_argnums=(0, 1))

    def step(batch: dict) -> float:
        x = batch["data"]
        if noise:
            t = torch.from_numpy(x)
            x = (t + noise * torch.randn_like(t)).numpy()
        state["params"], state["opt"], loss = train(state["params"], state["opt"], x,
                                                    batch["labels"])
        return float(loss)

    return step
