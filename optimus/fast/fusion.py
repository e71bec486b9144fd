"""Rewrites of the lowered op list where a fused kernel beats its parts.

Only one pattern pays for itself on the seed workloads: a softmax feeding a negative
log-likelihood, with the softmax output needed by nothing else than graph outputs, becomes
`SoftmaxNLL` (log-softmax + NLL, closed-form gradient). The softmax may be a `Softmax` node or
the activation of an `Affine`, whose activation then becomes linear.
"""
from __future__ import annotations

from collections.abc import Collection

from .activations import Softmax
from .dense import Affine
from .losses import NegativeLogLikelihood, SoftmaxNLL
from .plan import Op


def fuse(ops: list[Op], keep: Collection[str]) -> list[Op]:
    """Apply the rewrites to ``ops`` (in place) and return it.

    Args:
        ops: lowered ops in execution order.
        keep: values that must still be computed (graph results); a fused kernel writes the
            probabilities only when they are among them.
    """
    producer = {name: op for op in ops for name in op.outs.values()}
    readers: dict[str, list[Op]] = {}
    for op in ops:
        for name in op.ins.values():
            readers.setdefault(name, []).append(op)
    for op in [op for op in ops if op.kernel is NegativeLogLikelihood]:
        probs = op.ins["likelihoods"]
        source = producer.get(probs)
        if source is None or readers[probs] != [op]:
            continue
        if source.kernel is Softmax:
            logits, shape = source.ins["input"], source.in_shapes["input"]
            ops.remove(source)
        elif (source.kernel is Affine and not source.options
              and source.node.config.get("act_type") == "softmax"
              and len(source.out_shapes["output"]) == 2):
            logits, shape = probs + "#logits", source.out_shapes["output"]
            source.outs["output"] = logits
            source.out_shapes = {"output": shape}
            source.options["act"] = "linear"
        else:
            continue
        outs = {"output": op.outs["output"]}
        if probs in keep:
            outs["probs"] = probs
        ops[ops.index(op)] = Op(SoftmaxNLL, op.node, {"logits": logits, "index": op.ins["index"]},
                           outs, {"logits": shape, "index": op.in_shapes["index"]},
                           {"output": (), "probs": shape})
    return ops
