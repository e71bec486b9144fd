"""Training runs shared by the distributed tests: the same function trains in the test process
(one process, the reference) and in each spawned rank (`worker`), on small synthetic data.

The models are the seed examples' own graphs: the seed-002 MLP (784-100-10, L2 penalties) and
the seed-000 ConvNet (conv 15@9x9 + pool, affine 512, affine 10), rebuilt with the engine and
step rule under test.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

import optimus
from optimus.data import DataStream, SequentialScheme, ShuffledScheme
from optimus.examples import seed000_mnist_convnet, seed002_blocks_mlp, seed004_flux_conv
from optimus.train import CSVLog, Monitor, ReduceLROnPlateau, SaveBest

STEPS = 20
MLP_BATCH = 25  # 12 + 13 rows on two ranks
CONV_BATCH = 11  # 5 + 6
#: a row of the MLP data made NaN: in batch 3 of a pass in batches of 24, among the 12 rows
#: that rank 1 takes (rank 0's own rows are all finite)
NAN_ROW = 24 * 3 + 20


def rule(name: str) -> optimus.optim.StepRule:
    return {"sgd": optimus.optim.SGD(momentum=0.9),
            "adam": optimus.optim.Adam()}[name]


def _rebuild(graph: optimus.Graph, step_rule, engine: str) -> optimus.Graph:
    return optimus.Graph(graph.name, list(graph.inputs.values()), list(graph.nodes.values()),
                         graph.connections, list(graph.outputs.values()), graph.loss,
                         graph.updates, step_rule=step_rule, engine=engine)


def mlp_data() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.RandomState(7)
    x = rng.rand(110, 784).astype("float32")
    return x, (x[:, :10].argmax(axis=1)).astype("int64")


def conv_data() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.RandomState(8)
    x = rng.rand(60, 1, 28, 28).astype("float32")
    return x, (x[:, 0, 0, :10].argmax(axis=1)).astype("int32")


def mlp(engine: str, step_rule: str):
    np.random.seed(1)
    trainer, predictor = seed002_blocks_mlp.build(engine)
    return _rebuild(trainer, rule(step_rule), engine), predictor


def convnet(engine: str, step_rule: str):
    np.random.seed(123)
    return _rebuild(seed000_mnist_convnet.build_trainer(engine), rule(step_rule), engine)


def train(model: str, engine: str, step_rule: str, out: Path | None = None,
          steps: int = STEPS, resume: Path | None = None, nan_row: int | None = None,
          extensions: bool = False, rows: int | None = None,
          precision: str | None = None) -> dict[str, np.ndarray]:
    """Train one case; return its final parameters, optimizer state, losses and monitored
    values as flat arrays (what the tests compare across ranks and with one process).
    ``rows``: train the MLP on the first rows only (101: each pass ends with a one-row batch,
    which leaves rank 0 without rows); ``precision``: `Driver.fit`'s."""
    ext = []
    rate = 0.05 if step_rule == "sgd" else 1e-3
    if model == "mlp":
        graph, predictor = mlp(engine, step_rule)
        x, y = mlp_data()
        x, y = x[:rows], y[:rows]
        if nan_row is not None:
            x = x.copy()
            x[nan_row, 3] = np.nan
            source = DataStream({"features": x, "targets": y}, SequentialScheme(len(y), 24))
        else:
            source = DataStream({"features": x, "targets": y},
                                ShuffledScheme(len(y), MLP_BATCH, seed=3))
        hyper = {"learning_rate": rate}
        if extensions:
            test = DataStream({"features": x[:37], "targets": y[:37]},
                              SequentialScheme(37, 16))  # 16 16 5: uneven over two ranks
            ext = [Monitor(predictor, test, outputs=["cost"], prefix="test",
                           metrics={"error": optimus.train.error_rate("likelihoods",
                                                                      "targets")},
                           every_n_iterations=4),
                   SaveBest("test_cost", path=None if out is None else out / "best.npz"),
                   ReduceLROnPlateau("test_error", patience=1, factor=0.5)]
            if out is not None:
                ext.append(CSVLog(out / "stats.csv", every_n_iterations=5))
    else:
        graph = convnet(engine, step_rule)
        x, y = conv_data()
        np.random.seed(5)
        source = optimus.minibatch(x, y, CONV_BATCH)
        hyper = {"learning_rate": rate}
    driver = optimus.Driver(graph, name="case", output_directory=out, extensions=ext,
                            verbose=0)
    driver.fit(source, hyper, max_iter=steps - 1, save_freq=5 if out is not None else None,
               nan_exceptions=1 if nan_row is not None else 0, nan_snapshot_every=2,
               resume=resume, precision=precision)
    result = {f"param/{k}": v for k, v in graph.param_values.items()}
    state = graph.optimizer.state_dict()["state"]
    for index, entries in state.items():
        for key, value in entries.items():
            result[f"opt/{index}/{key}"] = np.asarray(value.detach().cpu().numpy()
                                                      if hasattr(value, "detach") else value)
    result["loss"] = np.asarray(driver.stats["loss"], dtype=np.float64)
    for name in ("test_cost", "test_error"):
        if name in driver.stats.columns:
            result[name] = np.asarray(driver.stats.recorded(name)[1], dtype=np.float64)
    result["learning_rate"] = np.asarray(driver.hyperparams["learning_rate"])
    result["iteration"] = np.asarray(driver.iteration)
    return result


def train_random(engine: str, steps: int = 6) -> dict[str, np.ndarray]:
    """The seed-004 ConvNet with its input noise and a Dropout before the dense layer, Adam,
    the same torch seed on every rank: each rank draws the whole global batch's numbers and
    keeps its rows (`optimus.draws`), so two processes draw exactly what one draws."""
    import torch

    np.random.seed(0)
    torch.manual_seed(0)
    graph = _rebuild(seed004_flux_conv.build(noise_std=0.3, dropout=0.5, engine=engine)[0],
                     rule("adam"), engine)
    x, y = conv_data()
    stream = DataStream({"images": x, "labels": y.astype("int64")}, SequentialScheme(60, 11))
    driver = optimus.Driver(graph, verbose=0)
    driver.fit(stream, {"learning_rate": 3e-3}, max_iter=steps - 1)
    result = {f"param/{k}": v for k, v in graph.param_values.items()}
    result["loss"] = np.asarray(driver.stats["loss"], dtype=np.float64)
    result["rng"] = torch.get_rng_state().numpy()  # every rank's generator where one's is
    return result


def train_batchnorm(steps: int = 8) -> dict[str, np.ndarray]:
    """The seed-004 ConvNet with BatchNorm after each conv (its benchmark variant), Adam:
    each rank normalises with its own rows' statistics, and the running statistics are
    averaged over the ranks after every step, so the ranks stay identical."""
    import torch

    np.random.seed(0)
    torch.manual_seed(0)
    graph = seed004_flux_conv.build(noise_std=0.0, batch_norm=True)[0]
    x, y = conv_data()
    stream = DataStream({"images": x, "labels": y.astype("int64")}, SequentialScheme(60, 12))
    driver = optimus.Driver(graph, verbose=0)
    driver.fit(stream, {"learning_rate": 3e-3}, max_iter=steps - 1)
    return {f"param/{k}": v for k, v in graph.param_values.items()}
