"""The node case table: for each node type, constructor kwargs, input arrays and a reference
written in plain PyTorch (independently of the node where that is practical: convolution by
im2col, pooling by unfolding windows, softmax by exponentials).

Every test in this folder is parametrised over `CASES`; `test_coverage` fails when a
registered node type has no case, so a node added without tests fails the suite.
"""
from __future__ import annotations

import zlib
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F

Tensor = torch.Tensor


@dataclass
class Case:
    """One node configuration with inputs and its expected output.

    Attributes:
        id: unique test id.
        type: the registered node type.
        kwargs: constructor kwargs (besides ``name``).
        inputs: one array per input port (float64, int64 for labels; 0-d for scalars).
        reference: ``(inputs, params) -> tensor``: the expected output in plain PyTorch.
        params: parameter values to use instead of random draws.
        training: call forward with ``training=True``.
        random: the forward draws random numbers; tests seed torch before each call.
        fixed_shape: the output shape follows from the input shapes (not SliceGT).
    """

    id: str
    type: str
    kwargs: dict
    inputs: dict[str, np.ndarray]
    reference: Callable[[dict[str, Tensor], dict[str, Tensor]], Tensor]
    params: dict[str, np.ndarray] = field(default_factory=dict)
    training: bool = False
    random: bool = False
    fixed_shape: bool = True

    def rng(self) -> np.random.RandomState:
        return np.random.RandomState(zlib.crc32(self.id.encode()))

    def param_values(self, node) -> dict[str, np.ndarray]:
        """Values for every parameter of ``node``: the case's, else seeded normal draws."""
        rng = self.rng()
        values = {}
        for name, param in node.params.items():
            draw = rng.normal(0.0, 0.5, size=param.shape)
            values[name] = np.asarray(self.params.get(name, draw), dtype=np.float64)
        return values


_rng = np.random.RandomState(1234)


def randn(*shape: int) -> np.ndarray:
    return _rng.normal(size=shape)


def away_from(values: np.ndarray, points=(0.0,), gap: float = 0.1) -> np.ndarray:
    """Push values at least ``gap`` away from the kinks at ``points`` (finite differences
    must not cross them)."""
    out = values.copy()
    for p in points:
        near = np.abs(out - p) < gap
        out[near] = p + np.where(out[near] >= p, gap, -gap) * 2
    return out


def positive(*shape: int, low: float = 0.5, high: float = 2.0) -> np.ndarray:
    return _rng.uniform(low, high, size=shape)


def labels(n: int, k: int) -> np.ndarray:
    return _rng.randint(0, k, size=n).astype(np.int64)


def probabilities(n: int, k: int) -> np.ndarray:
    e = np.exp(randn(n, k))
    return e / e.sum(1, keepdims=True)


# -- plain-torch references ---------------------------------------------------------------------
def softmax(z: Tensor, dim: int = 1) -> Tensor:
    e = torch.exp(z - z.amax(dim=dim, keepdim=True))
    return e / e.sum(dim=dim, keepdim=True)


def conv_im2col(x: Tensor, w: Tensor, b: Tensor, stride=(1, 1), padding=(0, 0)) -> Tensor:
    """Convolution (cross-correlation) as a matrix product over unfolded patches."""
    batch, _, h, wd = x.shape
    out_maps, _, kh, kw = w.shape
    cols = F.unfold(x, (kh, kw), padding=padding, stride=stride)
    oh = (h + 2 * padding[0] - kh) // stride[0] + 1
    ow = (wd + 2 * padding[1] - kw) // stride[1] + 1
    z = (w.reshape(out_maps, -1) @ cols).reshape(batch, out_maps, oh, ow)
    return z + b.reshape(1, -1, 1, 1)


def pool_windows(x: Tensor, kernel, stride, padding=(0, 0), pad_value=0.0) -> Tensor:
    """``(batch, maps, kh*kw, oh, ow)``: every pooling window's values."""
    batch, maps, h, w = x.shape
    x = F.pad(x, (padding[1], padding[1], padding[0], padding[0]), value=pad_value)
    hp, wp = h + 2 * padding[0], w + 2 * padding[1]
    oh, ow = (hp - kernel[0]) // stride[0] + 1, (wp - kernel[1]) // stride[1] + 1
    cols = F.unfold(x.reshape(batch * maps, 1, hp, wp), kernel, stride=stride)
    return cols.reshape(batch, maps, kernel[0] * kernel[1], oh, ow)


def max_pool(x, kernel, stride=None, padding=(0, 0)):
    return pool_windows(x, kernel, stride or kernel, padding, float("-inf")).amax(dim=2)


def avg_pool(x, kernel, stride=None, padding=(0, 0)):
    return pool_windows(x, kernel, stride or kernel, padding, 0.0).mean(dim=2)


ACTS = {
    "linear": lambda z: z,
    "relu": lambda z: torch.where(z > 0, z, torch.zeros_like(z)),
    "sigmoid": lambda z: 1.0 / (1.0 + torch.exp(-z)),
    "tanh": lambda z: (torch.exp(z) - torch.exp(-z)) / (torch.exp(z) + torch.exp(-z)),
    "softmax": softmax,
    "log_softmax": lambda z: torch.log(softmax(z)),
    "softplus": lambda z: torch.log1p(torch.exp(z)),
    "soft_relu": lambda z: torch.log1p(torch.exp(z)),
    "leaky_relu": lambda z: torch.where(z > 0, z, 0.01 * z),
    "elu": lambda z: torch.where(z > 0, z, torch.exp(z) - 1.0),
    "gelu": lambda z: 0.5 * z * (1.0 + torch.erf(z / 2 ** 0.5)),
}


def batch_norm_ref(x, gamma, beta, mean, var, eps):
    shape = (1, -1) + (1,) * (x.dim() - 2)
    return ((x - mean.reshape(shape)) / torch.sqrt(var.reshape(shape) + eps)
            * gamma.reshape(shape) + beta.reshape(shape))


def batch_stats(x):
    axes = [0] + list(range(2, x.dim()))
    return x.mean(dim=axes), x.var(dim=axes, unbiased=False)


def rows(x: Tensor, index: Tensor) -> Tensor:
    return x[torch.arange(x.shape[0]), index]


def relu(z):
    return torch.clamp(z, min=0.0)


# -- the table ------------------------------------------------------------------------------------
CASES: list[Case] = []


def case(id, type, kwargs, inputs, reference, **extra) -> None:
    CASES.append(Case(id, type, kwargs, inputs, reference, **extra))


X34 = away_from(randn(3, 4))

# activations
case("Sigmoid", "Sigmoid", {}, {"input": X34}, lambda i, p: ACTS["sigmoid"](i["input"]))
case("Tanh", "Tanh", {}, {"input": X34}, lambda i, p: ACTS["tanh"](i["input"]))
case("RectifiedLinear", "RectifiedLinear", {}, {"input": X34},
     lambda i, p: ACTS["relu"](i["input"]))
case("SoftRectifiedLinear", "SoftRectifiedLinear", {"knee": 2.0}, {"input": X34},
     lambda i, p: torch.log(1 + torch.exp(2.0 * i["input"])) / 2.0)
case("Softmax", "Softmax", {}, {"input": randn(3, 5)}, lambda i, p: softmax(i["input"]))
case("Softmax-axis2", "Softmax", {"axis": 2}, {"input": randn(2, 3, 4)},
     lambda i, p: softmax(i["input"], dim=2))
case("LogSoftmax", "LogSoftmax", {}, {"input": randn(3, 5)},
     lambda i, p: torch.log(softmax(i["input"])))

# elementwise
case("Log", "Log", {"epsilon": 0.1, "gain": 2.0}, {"input": positive(3, 4)},
     lambda i, p: torch.log(2.0 * i["input"] + 0.1))
case("Sqrt", "Sqrt", {}, {"input": positive(3, 4)}, lambda i, p: i["input"] ** 0.5)
case("Power", "Power", {"exponent": 2.5}, {"input": positive(3, 4)},
     lambda i, p: torch.exp(2.5 * torch.log(i["input"])))
case("Normalize-l2", "Normalize", {"mode": "l2", "scale_factor": 2.0},
     {"input": randn(3, 2, 4)},
     lambda i, p: 2.0 * i["input"] / (i["input"] ** 2).sum(dim=(1, 2), keepdim=True).sqrt())
case("Normalize-l1", "Normalize", {"mode": "l1"}, {"input": away_from(randn(3, 4))},
     lambda i, p: i["input"] / i["input"].abs().sum(dim=1, keepdim=True))
case("NormalizeDim-l2", "NormalizeDim", {"axis": 1}, {"input": randn(3, 4, 2)},
     lambda i, p: i["input"] / (i["input"] ** 2).sum(dim=1, keepdim=True).sqrt())
case("NormalizeDim-l1", "NormalizeDim", {"axis": 0, "mode": "l1"},
     {"input": away_from(randn(3, 4))},
     lambda i, p: i["input"] / i["input"].abs().sum(dim=0, keepdim=True))

# shape
case("Dimshuffle", "Dimshuffle", {"axes": [1, "x", 0]}, {"input": randn(3, 4)},
     lambda i, p: i["input"].t()[:, None, :])
case("Dimshuffle-rows", "Dimshuffle", {"axes": [0, 2, "x", 1]}, {"input": randn(3, 2, 4)},
     lambda i, p: i["input"].transpose(1, 2)[:, :, None, :])
case("Flatten", "Flatten", {"ndim": 2}, {"input": randn(2, 3, 4)},
     lambda i, p: i["input"].reshape(2, 12))
case("Flatten-3", "Flatten", {"ndim": 3}, {"input": randn(2, 3, 2, 2)},
     lambda i, p: i["input"].reshape(2, 3, 4))
case("Slice", "Slice", {"slices": [None, [1, 3], 0]}, {"input": randn(3, 4, 5)},
     lambda i, p: i["input"][:, 1:3, 0])
case("Slice-step", "Slice", {"slices": [[0, None, 2]]}, {"input": randn(5, 2)},
     lambda i, p: i["input"][0::2])
case("SliceGT", "SliceGT", {"value": 0.0}, {"input": away_from(randn(8))},
     lambda i, p: i["input"][i["input"] > 0], fixed_shape=False)

# reduce
X243 = randn(2, 4, 3)
case("Sum", "Sum", {}, {"input": X243}, lambda i, p: i["input"].sum())
case("Sum-axis", "Sum", {"axis": 1}, {"input": X243}, lambda i, p: i["input"].sum(1))
case("Sum-axes", "Sum", {"axis": [0, 2]}, {"input": X243},
     lambda i, p: i["input"].sum(2).sum(0))
case("Mean", "Mean", {"axis": 1}, {"input": X243}, lambda i, p: i["input"].sum(1) / 4)
case("Max", "Max", {"axis": 1}, {"input": X243}, lambda i, p: i["input"].max(1).values)
case("Max-all", "Max", {}, {"input": X243}, lambda i, p: i["input"].max())
case("Min", "Min", {"axis": 0}, {"input": X243}, lambda i, p: i["input"].min(0).values)
case("Min-last-axis", "Min", {"axis": -1}, {"input": X243},
     lambda i, p: i["input"].min(2).values)
case("L1Magnitude", "L1Magnitude", {"axis": 1}, {"input": away_from(X243)},
     lambda i, p: i["input"].abs().sum(1))
case("L2Magnitude", "L2Magnitude", {}, {"input": X243},
     lambda i, p: (i["input"] ** 2).sum().sqrt())
case("L2Magnitude-axis", "L2Magnitude", {"axis": -1}, {"input": X243},
     lambda i, p: (i["input"] ** 2).sum(-1).sqrt())
X45, I4 = randn(4, 5), labels(4, 5)


def _not_index(x, index, pick):
    keep = torch.ones_like(x, dtype=torch.bool)
    keep[torch.arange(x.shape[0]), index] = False
    return torch.stack([pick(row[k]) for row, k in zip(x, keep)])


case("SelectIndex", "SelectIndex", {}, {"input": X45, "index": I4},
     lambda i, p: rows(i["input"], i["index"]))
case("MaxNotIndex", "MaxNotIndex", {}, {"input": X45, "index": I4},
     lambda i, p: _not_index(i["input"], i["index"], torch.max))
case("MinNotIndex", "MinNotIndex", {}, {"input": X45, "index": I4},
     lambda i, p: _not_index(i["input"], i["index"], torch.min))

# combine
case("Add", "Add", {}, {"input_0": randn(3, 4), "input_1": randn(3, 4)},
     lambda i, p: i["input_0"] + i["input_1"])
case("Add-3", "Add", {"num_inputs": 3},
     {"input_0": randn(3, 4), "input_1": randn(3, 4), "input_2": randn(3, 4)},
     lambda i, p: i["input_0"] + i["input_1"] + i["input_2"])
case("Concatenate", "Concatenate", {"num_inputs": 2, "axis": 1},
     {"input_0": randn(2, 3), "input_1": randn(2, 4)},
     lambda i, p: torch.cat([i["input_0"], i["input_1"]], 1))
case("Stack", "Stack", {"num_inputs": 2, "axes": [1, 0, 2]},
     {"input_0": randn(2, 3), "input_1": randn(2, 3)},
     lambda i, p: torch.stack([i["input_0"], i["input_1"]], dim=1))
case("Product", "Product", {}, {"input_a": randn(3, 4), "input_b": randn(3, 4)},
     lambda i, p: i["input_a"] * i["input_b"])
case("Divide", "Divide", {}, {"numerator": randn(3, 4), "denominator": away_from(randn(3, 4))},
     lambda i, p: i["numerator"] / i["denominator"])
case("CrossProduct", "CrossProduct", {}, {"input_a": randn(2, 3), "input_b": randn(2, 4)},
     lambda i, p: torch.einsum("bi,bj->bij", i["input_a"], i["input_b"]).reshape(2, 12))

# distances
case("Euclidean", "Euclidean", {}, {"input_a": randn(3, 2, 2), "input_b": randn(3, 2, 2)},
     lambda i, p: ((i["input_a"] - i["input_b"]) ** 2).sum(dim=(1, 2)).sqrt())
case("Euclidean-vector", "Euclidean", {}, {"input_a": randn(5), "input_b": randn(5)},
     lambda i, p: ((i["input_a"] - i["input_b"]) ** 2).sum().sqrt())
case("SquaredEuclidean", "SquaredEuclidean", {},
     {"input_a": randn(3, 4), "input_b": randn(3, 4)},
     lambda i, p: ((i["input_a"] - i["input_b"]) ** 2).sum(1))

# dense
for act in ACTS:
    case(f"Affine-{act}", "Affine",
         {"input_shape": [None, 2, 3], "output_shape": [None, 4], "act_type": act},
         {"input": away_from(randn(3, 2, 3))},
         lambda i, p, act=act: ACTS[act](i["input"].reshape(3, 6) @ p["weights"] + p["bias"]))
case("Affine-3d-output", "Affine",
     {"input_shape": [None, 5], "output_shape": [None, 2, 3], "act_type": "linear"},
     {"input": randn(3, 5)},
     lambda i, p: (i["input"] @ p["weights"] + p["bias"]).reshape(3, 2, 3))
case("CenteredAffine", "CenteredAffine",
     {"input_shape": [None, 5], "output_shape": [None, 3], "act_type": "tanh"},
     {"input": randn(4, 5)},
     lambda i, p: ACTS["tanh"]((i["input"] - p["bias"]) @ p["weights"]))
case("RadialBasis", "RadialBasis", {"input_shape": [None, 2, 2], "output_shape": [None, 3]},
     {"input": randn(4, 2, 2)},
     lambda i, p: ((i["input"].reshape(4, 4, 1) - p["weights"][None]) ** 2).sum(1))
case("Multiply", "Multiply", {"weight_shape": [1, 4], "broadcast": [0]},
     {"input": randn(3, 4)}, lambda i, p: i["input"] * p["weight"].expand(3, 4))
case("Multiply-per-sample", "Multiply", {"weight_shape": [2, 4]}, {"input": randn(3, 2, 4)},
     lambda i, p: i["input"] * p["weight"][None])
case("Constant", "Constant", {"shape": [2, 3]}, {}, lambda i, p: p["data"])

# convolution
IMG = randn(2, 2, 7, 7)
CONV = {"input_shape": [None, 2, 7, 7], "weight_shape": [3, 2, 3, 3]}


def conv3d(act="relu", pool=None, stride=(1, 1), padding=(0, 0)):
    def ref(i, p):
        z = ACTS[act](conv_im2col(i["input"], p["weights"], p["bias"], stride, padding))
        return z if pool is None else max_pool(z, pool)
    return ref


def conv_same_even(i, p):  # kernel 2: PyTorch pads 0 before and 1 after
    return conv_im2col(F.pad(i["input"], (0, 1, 0, 1)), p["weights"], p["bias"])


case("Conv3D", "Conv3D", {**CONV, "pool_shape": [2, 2]}, {"input": IMG}, conv3d(pool=(2, 2)))
case("Conv3D-same", "Conv3D", {**CONV, "border_mode": "same", "act_type": "linear"},
     {"input": IMG}, conv3d("linear", padding=(1, 1)))
case("Conv3D-same-even", "Conv3D",
     {"input_shape": [None, 2, 5, 5], "weight_shape": [3, 2, 2, 2], "border_mode": "same",
      "act_type": "linear"}, {"input": randn(2, 2, 5, 5)}, conv_same_even)
case("Conv3D-full", "Conv3D", {**CONV, "border_mode": "full", "act_type": "tanh"},
     {"input": IMG}, conv3d("tanh", padding=(2, 2)))
case("Conv3D-full-pool", "Conv3D",
     {**CONV, "border_mode": "full", "pool_shape": [3, 2], "act_type": "sigmoid"},
     {"input": IMG}, conv3d("sigmoid", pool=(3, 2), padding=(2, 2)))
case("Conv3D-downsample", "Conv3D",
     {**CONV, "downsample_shape": [2, 2], "act_type": "sigmoid"}, {"input": IMG},
     conv3d("sigmoid", stride=(2, 2)))
case("Conv3D-downsample-pool", "Conv3D",
     {**CONV, "downsample_shape": [1, 2], "pool_shape": [2, 1], "act_type": "linear"},
     {"input": IMG}, conv3d("linear", pool=(2, 1), stride=(1, 2)))
case("Conv3D-pool-gelu", "Conv3D", {**CONV, "pool_shape": [2, 2], "act_type": "gelu"},
     {"input": IMG}, conv3d("gelu", pool=(2, 2)))
case("Conv3D-pool-softmax", "Conv3D", {**CONV, "pool_shape": [2, 2], "act_type": "softmax"},
     {"input": IMG}, conv3d("softmax", pool=(2, 2)))
case("Conv3D-3d-weights", "Conv3D",
     {"input_shape": [None, 2, 7, 7], "weight_shape": [3, 3, 3], "act_type": "linear"},
     {"input": IMG}, conv3d("linear"))
case("Conv3D-padding-stride", "Conv3D", {**CONV, "padding": 1, "stride": [2, 1]},
     {"input": IMG}, conv3d("relu", stride=(2, 1), padding=(1, 1)))
case("Conv2D", "Conv2D",
     {"input_shape": [None, 2, 7, 7], "num_filters": 3, "kernel_size": 3, "padding": 1},
     {"input": IMG}, conv3d("relu", padding=(1, 1)))
case("Conv2D-weight-shape", "Conv2D",
     {"input_shape": [None, 2, 7, 7], "weight_shape": [4, 2, 3, 2], "padding": "same",
      "act_type": "linear"}, {"input": IMG},
     lambda i, p: conv_im2col(F.pad(i["input"], (0, 1, 1, 1)), p["weights"], p["bias"]))
case("Conv2D-full-stride", "Conv2D",
     {"input_shape": [None, 2, 7, 7], "num_filters": 2, "kernel_size": [2, 3],
      "padding": "full", "stride": 2, "act_type": "tanh"}, {"input": IMG},
     conv3d("tanh", stride=(2, 2), padding=(1, 2)))
case("Conv2D-valid", "Conv2D",
     {"input_shape": [None, 2, 7, 7], "num_filters": 2, "kernel_size": 4, "padding": "valid",
      "stride": [1, 3], "act_type": "linear"}, {"input": IMG},
     conv3d("linear", stride=(1, 3)))

# pooling
MAPS = randn(2, 3, 5, 5)
case("MaxPool", "MaxPool", {"input_shape": [None, 3, 5, 5], "pool_shape": [2, 2]},
     {"input": MAPS}, lambda i, p: max_pool(i["input"], (2, 2)))
case("MaxPool-stride-padding", "MaxPool",
     {"input_shape": None, "pool_shape": 3, "stride": 2, "padding": 1}, {"input": MAPS},
     lambda i, p: max_pool(i["input"], (3, 3), (2, 2), (1, 1)))
case("AvgPool", "AvgPool", {"input_shape": [None, 3, 5, 5], "pool_shape": [2, 2]},
     {"input": MAPS}, lambda i, p: avg_pool(i["input"], (2, 2)))
case("AvgPool-stride-padding", "AvgPool",
     {"input_shape": [None, 3, 5, 5], "pool_shape": [3, 3], "stride": [1, 2], "padding": 1},
     {"input": MAPS}, lambda i, p: avg_pool(i["input"], (3, 3), (1, 2), (1, 1)))

# training-time nodes
X43 = randn(4, 3)


def seeded_dropout(i, p, rate=0.3):
    return torch.nn.Dropout(rate).train()(i["input"])  # the test seeds torch before the call


case("Dropout", "Dropout", {"rate": 0.3}, {"input": X43}, lambda i, p: i["input"])
case("Dropout-training", "Dropout", {"rate": 0.3}, {"input": X43}, seeded_dropout,
     training=True, random=True)
case("GaussianNoise", "GaussianNoise", {"std": 0.5}, {"input": X43}, lambda i, p: i["input"])
case("GaussianNoise-training", "GaussianNoise", {"std": 0.5}, {"input": X43},
     lambda i, p: i["input"] + 0.5 * torch.randn(i["input"].shape, dtype=i["input"].dtype),
     training=True, random=True)
BN_STATS = {"running_mean": np.array([0.5, -1.0, 0.0]),
            "running_var": np.array([0.5, 2.0, 1.5])}
case("BatchNorm", "BatchNorm", {"input_shape": [None, 3]}, {"input": X43},
     lambda i, p: batch_norm_ref(i["input"], p["gamma"], p["beta"], p["running_mean"],
                                 p["running_var"], 1e-5), params=BN_STATS)
case("BatchNorm-training", "BatchNorm", {"input_shape": [None, 3], "epsilon": 1e-3},
     {"input": X43},
     lambda i, p: batch_norm_ref(i["input"], p["gamma"], p["beta"], *batch_stats(i["input"]),
                                 1e-3), params=BN_STATS, training=True)
case("BatchNorm-maps-training", "BatchNorm", {"input_shape": [None, 2, 3, 3], "momentum": 0.5},
     {"input": randn(3, 2, 3, 3)},
     lambda i, p: batch_norm_ref(i["input"], p["gamma"], p["beta"], *batch_stats(i["input"]),
                                 1e-5), params=BN_STATS | {"running_mean": np.zeros(2),
                                                           "running_var": np.ones(2)},
     training=True)

# losses
P43, I43 = probabilities(4, 3), labels(4, 3)


def nll(i, p):
    return -torch.log(rows(i["likelihoods"], i["index"])).mean()


for loss_type in ("NegativeLogLikelihoodLoss", "NegativeLogLikelihood",
                  "CategoricalCrossEntropy"):
    case(loss_type, loss_type, {}, {"likelihoods": P43, "index": I43}, nll)
case("SoftmaxCrossEntropyLoss", "SoftmaxCrossEntropyLoss", {},
     {"logits": randn(4, 3), "index": I43},
     lambda i, p: (torch.log(torch.exp(i["logits"]).sum(1)) - rows(i["logits"], i["index"])
                   ).mean())
PRED, TARGET = positive(4, 3, low=0.1, high=0.9), _rng.uniform(0, 1, size=(4, 3))


def cross_entropy(i, p, eps=1e-6):
    pr, t = i["prediction"], i["target"]
    ll = t * torch.log((pr + eps) / (1 + eps)) + (1 - t) * torch.log((1 - pr + eps) / (1 + eps))
    return -ll.sum(1) / pr.shape[1]


case("CrossEntropy", "CrossEntropy", {}, {"prediction": PRED, "target": TARGET}, cross_entropy)
case("CrossEntropy-epsilon", "CrossEntropy", {"epsilon": 0.01},
     {"prediction": PRED, "target": TARGET}, lambda i, p: cross_entropy(i, p, 0.01))
case("CrossEntropyLoss", "CrossEntropyLoss", {}, {"prediction": PRED, "target": TARGET},
     lambda i, p: cross_entropy(i, p).mean())
case("MeanSquaredError", "MeanSquaredError", {},
     {"prediction": randn(4, 2, 3), "target": randn(4, 2, 3)},
     lambda i, p: ((i["prediction"] - i["target"]) ** 2).sum(dim=(1, 2)).mean())
case("MeanSquaredError-vector", "MeanSquaredError", {},
     {"prediction": randn(5), "target": randn(5)},
     lambda i, p: ((i["prediction"] - i["target"]) ** 2).sum())
case("WeightDecayPenalty", "WeightDecayPenalty", {"weight": 0.005}, {"input": randn(6, 4)},
     lambda i, p: 0.005 * (i["input"] ** 2).sum())
case("WeightDecayPenalty-port", "WeightDecayPenalty", {},
     {"input": randn(4), "weight": np.array(0.3)},
     lambda i, p: i["weight"] * (i["input"] ** 2).sum())


def mean_row_norm(x):  # the original library's: weight * mean(sqrt(sum(flatten(2)(x) ** 2, -1)))
    return (x.reshape(x.shape[0], -1) ** 2).sum(-1).sqrt().mean()


case("WeightDecayPenalty-mean-row-norm", "WeightDecayPenalty",
     {"weight": 0.02, "form": "mean_row_norm"}, {"input": randn(4, 2, 3)},
     lambda i, p: 0.02 * mean_row_norm(i["input"]))
case("WeightDecayPenalty-mean-row-norm-port", "WeightDecayPenalty", {"form": "mean_row_norm"},
     {"input": randn(5, 3), "weight": np.array(0.3)},
     lambda i, p: i["weight"] * mean_row_norm(i["input"]))
DIST = np.array([0.2, 0.9, 1.6, 2.4, 0.5, 3.0])
EQUIV = np.array([1.0, 0.0, 0.7, 1.0, 0.0, 0.2])


def similarity(i, p, sim=0.5, diff=2.0):
    d, y = i["distance"], i["equivalence"]
    return (y * relu(d - sim) ** 2 + (1 - y) * relu(diff - d) ** 2).mean()


case("SimilarityMargin", "SimilarityMargin", {"sim_margin": 0.5, "diff_margin": 2.0},
     {"distance": DIST, "equivalence": EQUIV}, similarity)
case("SimilarityMargin-ports", "SimilarityMargin", {},
     {"distance": DIST, "equivalence": EQUIV, "sim_margin": np.array(0.5),
      "diff_margin": np.array(2.0)},
     lambda i, p: similarity(i, p, i["sim_margin"], i["diff_margin"]))
COST_SIM = np.array([0.1, 0.8, 1.5, 0.3, 2.0])
COST_DIFF = np.array([0.2, 1.4, 0.6, 2.5, 1.9])


def contrastive(i, p, ms=0.5, md=1.0, filter_zeros=True):
    ls = relu(i["cost_sim"] - ms) ** 2
    ld = relu(md - i["cost_diff"]) ** 2
    if filter_zeros:
        return ls[ls > 0].mean() + ld[ld > 0].mean()
    return ls.mean() + ld.mean()


case("ContrastiveMargin", "ContrastiveMargin", {"margin_sim": 0.5, "margin_diff": 1.0},
     {"cost_sim": COST_SIM, "cost_diff": COST_DIFF}, contrastive)
case("ContrastiveMargin-no-filter", "ContrastiveMargin",
     {"filter_zeros": False, "margin_sim": 0.5, "margin_diff": 1.0},
     {"cost_sim": COST_SIM, "cost_diff": COST_DIFF},
     lambda i, p: contrastive(i, p, filter_zeros=False))
case("ContrastiveMargin-ports", "ContrastiveMargin", {},
     {"cost_sim": COST_SIM, "cost_diff": COST_DIFF, "margin_sim": np.array(0.5),
      "margin_diff": np.array(1.0)},
     lambda i, p: contrastive(i, p, i["margin_sim"], i["margin_diff"]))


def rank(i, p, alpha=2.0, margin=0.3):
    return (relu(i["cost_diff"] - alpha * i["cost_sim"] + margin) ** 2).mean()


case("PairwiseRank", "PairwiseRank", {"alpha": 2.0, "margin": 0.3},
     {"cost_sim": COST_SIM, "cost_diff": COST_DIFF}, rank)
case("PairwiseRank-ports", "PairwiseRank", {},
     {"cost_sim": COST_SIM, "cost_diff": COST_DIFF, "alpha": np.array(2.0),
      "margin": np.array(0.3)},
     lambda i, p: rank(i, p, i["alpha"], i["margin"]))

BY_ID = {c.id: c for c in CASES}
assert len(BY_ID) == len(CASES), "case ids must be unique"
