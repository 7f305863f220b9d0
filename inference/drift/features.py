"""What drift watches of a tensor: one number per batch row per feature.

Every input and output tensor is reduced to a few named features, each giving one value
per row of the batch (the first axis), so that a feature's values are independent
samples and the Kolmogorov–Smirnov test counts rows, not correlated pixels:

=====================  ==========================================  ===================
tensor                 features                                    names
=====================  ==========================================  ===================
``[N]``                the value                                   ``x``
``[N, F]`` (vectors)   each element, the first ``cap``             ``x[0]`` ``x[1]``
``[N, T, F]``          each last-axis feature, mean over T         ``x[f=0]``
``[N, C, H, W]``       each channel's mean (NCHW: C <= W; else      ``image[c=0]``
                       NHWC, the last axis), the first ``cap``
higher ranks           the mean of each row                        ``x[mean]``
=====================  ==========================================  ===================

Non-numeric tensors (strings) are skipped. Cheap numpy reductions only: this runs in the
drift thread, never on the request path.
"""

from __future__ import annotations

import numpy as np

DEFAULT_CAP = 32


def tensor_features(name: str, value, *, cap: int = DEFAULT_CAP) -> dict[str, np.ndarray]:
    """``{feature name: float64 values, one per batch row}`` of one tensor."""
    array = np.asarray(value)
    if array.dtype.kind not in "biuf":
        return {}
    array = array.astype(np.float64, copy=False)
    if array.ndim == 0:
        return {name: array.reshape(1)}
    if array.ndim == 1:
        return {name: array}
    rows = array.shape[0]
    if array.ndim == 2:
        return {f"{name}[{j}]": array[:, j] for j in range(min(array.shape[1], cap))}
    if array.ndim == 3:
        means = array[:, :, :cap].mean(axis=1)
        return {f"{name}[f={j}]": means[:, j] for j in range(means.shape[1])}
    if array.ndim == 4:
        channels_first = array.shape[1] <= array.shape[3]
        if channels_first:
            means = array[:, :cap].reshape(rows, min(array.shape[1], cap), -1).mean(axis=2)
        else:
            means = array[..., :cap].reshape(rows, -1, min(array.shape[3], cap)).mean(axis=1)
        return {f"{name}[c={j}]": means[:, j] for j in range(means.shape[1])}
    return {f"{name}[mean]": array.reshape(rows, -1).mean(axis=1)}


def request_features(
    inputs: dict, outputs: dict, *, cap: int = DEFAULT_CAP
) -> dict[tuple[str, str], np.ndarray]:
    """``{("input" | "output", feature): values}`` of one request (rows must agree per
    tensor, not across tensors: each feature is histogrammed on its own)."""
    features: dict[tuple[str, str], np.ndarray] = {}
    for io, tensors in (("input", inputs), ("output", outputs)):
        for tensor, value in tensors.items():
            for feature, values in tensor_features(tensor, value, cap=cap).items():
                features[(io, feature)] = values
    return features
