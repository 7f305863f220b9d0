"""Demo models that `make run` builds on first start, so a new user can switch and predict
within a minute: two versions of a small detector-like ONNX model, a TorchScript policy
and an ONNX classifier. ONNX graphs are written with onnx.helper (no exporter needed);
the policy needs torch, imported only here, in the bootstrap process.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

DETECTOR_INPUT = {"name": "images", "shape": ["batch", 3, 64, 64], "dtype": "float32"}
POLICY_INPUT = {"name": "obs", "shape": ["batch", 12], "dtype": "float32"}
CLASSIFIER_INPUT = {"name": "features", "shape": ["batch", 16], "dtype": "float32"}


def _tensor(name: str, array: np.ndarray):
    from onnx import numpy_helper

    return numpy_helper.from_array(array.astype(np.float32), name)


def build_detector(path: Path, *, channels: int, seed: int) -> Path:
    """images[batch,3,64,64] -> boxes[batch,4] (sigmoid), scores[batch,1] (sigmoid)."""
    import onnx
    from onnx import TensorProto, helper

    rng = np.random.default_rng(seed)
    inits = [
        _tensor("conv_w", rng.normal(0, 0.2, (channels, 3, 3, 3))),
        _tensor("conv_b", np.zeros(channels)),
        _tensor("box_w", rng.normal(0, 0.3, (channels, 4))),
        _tensor("box_b", np.zeros(4)),
        _tensor("score_w", rng.normal(0, 0.3, (channels, 1))),
        _tensor("score_b", np.zeros(1)),
    ]
    nodes = [
        helper.make_node(
            "Conv", ["images", "conv_w", "conv_b"], ["c"], strides=[2, 2], pads=[1, 1, 1, 1]
        ),
        helper.make_node("Relu", ["c"], ["r"]),
        helper.make_node("GlobalAveragePool", ["r"], ["p"]),
        helper.make_node("Flatten", ["p"], ["f"], axis=1),
        helper.make_node("Gemm", ["f", "box_w", "box_b"], ["box_logits"]),
        helper.make_node("Sigmoid", ["box_logits"], ["boxes"]),
        helper.make_node("Gemm", ["f", "score_w", "score_b"], ["score_logits"]),
        helper.make_node("Sigmoid", ["score_logits"], ["scores"]),
    ]
    graph = helper.make_graph(
        nodes,
        "tiny_detector",
        [helper.make_tensor_value_info("images", TensorProto.FLOAT, ["batch", 3, 64, 64])],
        [
            helper.make_tensor_value_info("boxes", TensorProto.FLOAT, ["batch", 4]),
            helper.make_tensor_value_info("scores", TensorProto.FLOAT, ["batch", 1]),
        ],
        inits,
    )
    model = helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", 17)], producer_name="modelmgr-demo"
    )
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path


def build_classifier(path: Path, *, seed: int = 7) -> Path:
    """features[batch,16] -> probs[batch,10] (softmax)."""
    import onnx
    from onnx import TensorProto, helper

    rng = np.random.default_rng(seed)
    graph = helper.make_graph(
        [
            helper.make_node("Gemm", ["features", "w", "b"], ["logits"]),
            helper.make_node("Softmax", ["logits"], ["probs"], axis=1),
        ],
        "tiny_classifier",
        [helper.make_tensor_value_info("features", TensorProto.FLOAT, ["batch", 16])],
        [helper.make_tensor_value_info("probs", TensorProto.FLOAT, ["batch", 10])],
        [_tensor("w", rng.normal(0, 0.5, (16, 10))), _tensor("b", np.zeros(10))],
    )
    model = helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", 17)], producer_name="modelmgr-demo"
    )
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path


def build_policy(path: Path, *, seed: int = 3) -> Path:
    """A TorchScript MLP policy: obs[batch,12] -> actions[batch,4] in [-1, 1]."""
    import warnings

    import torch

    class Policy(torch.nn.Module):
        """forward's argument name becomes the TorchScript input name: ``obs``."""

        def __init__(self):
            super().__init__()
            self.net = torch.nn.Sequential(
                torch.nn.Linear(12, 32), torch.nn.Tanh(), torch.nn.Linear(32, 4), torch.nn.Tanh()
            )

        def forward(self, obs):
            return self.net(obs)

    torch.manual_seed(seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.jit.trace(Policy().eval(), torch.zeros(2, 12)).save(str(path))
    return path


# name, version, task, slot, builder, kwargs, filename, declared inputs (for runtimes
# whose files do not record shapes/dtypes, such as TorchScript)
DEMO_MODELS = [
    (
        "tiny-detector",
        "1.0",
        "detector",
        "detector",
        build_detector,
        {"channels": 8, "seed": 1},
        "detector.onnx",
        None,
    ),
    (
        "tiny-detector",
        "1.1",
        "detector",
        None,
        build_detector,
        {"channels": 16, "seed": 2},
        "detector.onnx",
        None,
    ),
    ("walk-policy", "1", "policy", "policy", build_policy, {}, "policy.pt", [POLICY_INPUT]),
    (
        "tiny-classifier",
        "1",
        "classifier",
        "classifier",
        build_classifier,
        {},
        "classifier.onnx",
        None,
    ),
]
