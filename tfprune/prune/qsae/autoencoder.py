"""The quantized sparse autoencoder (QSAE) that ranks a layer's channels.

The QSAE reconstructs the per-channel activations of one layer (``x``, one value per
channel and sample; convolution outputs are summarised per channel by their spatial mean):

    f(x) = q(W_e)^T x + b_e          (encoder, ``hidden`` units (default: as many as channels), linear)
    g(z) = q(W_d)^T z + b_d          (decoder)
    loss = mean_n ||x_n - g(f(x_n))||^2 + lambda * (||W_e||_1 + ||W_d||_1)

``q`` fake-quantizes a weight tensor to symmetric per-tensor int8 (scale ``max|W|/127``,
round to the grid) in the forward pass; the gradient passes straight through to the float
weights (the straight-through estimator). Training is full-batch Adam in NumPy: the
autoencoder has a few thousand weights, so this is milliseconds per step and exactly
reproducible under a seed.

Channels are centred and divided by one common scale (the root mean square of the channel
stds), so their relative sizes stay: a faint channel weighs little in the reconstruction, as
it does in the next layer's input. A channel whose std is below ``1e-6`` of the largest is
constant and becomes exactly 0: no reconstruction gradient reaches its encoder weights, and
the L1 term drives them to 0.

**Importance** of a channel is the L1 norm of the (quantized) encoder weights that read it.
L1 alone is indifferent between reading one of two duplicated channels with weight ``w`` or
both with ``w/2``, which would make both look half as important and let a threshold prune
both. :meth:`QSAE.rank` therefore eliminates channels one at a time (backward elimination):
it drops the least important channel from the encoder's input, retrains briefly (warm start)
and re-reads the importances, so a duplicate's twin takes over its weight before it could be
dropped too. The score of a channel is its importance when it was eliminated, made monotone
along the elimination order (a running maximum) and divided by the last survivor's, so a
single threshold ``tau`` in [0, 1] separates pruned from kept channels.

Example:
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> x = rng.normal(size=(256, 6)).astype("float32")
    >>> x[:, 2] = 3.0                      # a constant channel carries nothing
    >>> ranking = QSAE(seed=0).rank(x)
    >>> int(ranking.order[0])
    2
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

#: Channels whose std is below this share of the largest channel std count as constant.
CONSTANT_RELATIVE_STD = 1e-6


def fake_quantize(weights: np.ndarray, bits: int = 8) -> np.ndarray:
    """Symmetric per-tensor fake quantization: round ``weights`` to the int grid, back to float.

    Example:
        >>> fake_quantize(np.array([1.0, 0.003, -0.5]), bits=8).tolist()
        [1.0, 0.0, -0.5039370078740157]
    """
    levels = 2 ** (bits - 1) - 1
    largest = float(np.max(np.abs(weights))) if weights.size else 0.0
    if largest == 0.0:
        return np.zeros_like(weights)
    scale = largest / levels
    return np.round(weights / scale) * scale


def summarize(activations: np.ndarray) -> np.ndarray:
    """One value per sample and channel: the spatial mean over every axis between batch and channel.

    Example:
        >>> summarize(np.ones((2, 4, 4, 3))).shape
        (2, 3)
    """
    activations = np.asarray(activations, np.float64)
    if activations.ndim < 2:
        raise ValueError(f"activations need a batch and a channel axis, got shape {activations.shape}")
    if activations.ndim == 2:
        return activations
    return activations.mean(axis=tuple(range(1, activations.ndim - 1)))


@dataclass(frozen=True)
class Ranking:
    """Channels in elimination order (least important first) and their scores in [0, 1].

    ``scores[c]`` is channel ``c``'s score (monotone along ``order``); ``importance[c]`` is the
    raw L1 norm of its encoder weights in the QSAE trained on all channels.

    Example:
        >>> r = Ranking(np.array([1, 0]), np.array([1.0, 0.2]), np.array([0.9, 0.1]))
        >>> r.pruned(1).tolist()
        [1]
    """

    order: np.ndarray
    scores: np.ndarray
    importance: np.ndarray

    def pruned(self, count: int) -> np.ndarray:
        """The ``count`` least important channels."""
        return np.sort(self.order[:count])


class QSAE:
    """A quantized sparse autoencoder over the channels of one layer (see the module docstring).

    Args:
        hidden: encoder width; default the number of channels, so that the L1 term, not a
            bottleneck, decides which channels the code reads.
        l1: lambda, the weight of the L1 term.
        steps: Adam steps of the first training.
        refit_steps: warm-start steps after each elimination in :meth:`rank`.
        learning_rate: Adam's step size.
        bits: fake-quantization bits of the weights (8: int8).
        seed: seeds the initial weights.

    Example:
        >>> import numpy as np
        >>> x = np.random.default_rng(1).normal(size=(128, 4))
        >>> model = QSAE(seed=1).fit(x)
        >>> model.importance().shape, model.reconstruction_error(x) < 1.0
        ((4,), True)
    """

    def __init__(self, hidden: int | None = None, l1: float = 1e-3, steps: int = 300, refit_steps: int = 50,
                 learning_rate: float = 1e-2, bits: int = 8, seed: int = 0) -> None:
        _check_int(hidden, "hidden", allow_none=True)
        _check_int(steps, "steps")
        _check_int(refit_steps, "refit_steps", minimum=0)
        _check_int(bits, "bits", minimum=2)
        _check_int(seed, "seed", minimum=0)
        if not (isinstance(l1, (int, float)) and l1 >= 0):
            raise ValueError(f"l1 must be a number >= 0, got {l1!r}")
        if not (isinstance(learning_rate, (int, float)) and learning_rate > 0):
            raise ValueError(f"learning_rate must be a number > 0, got {learning_rate!r}")
        self.hidden, self.l1, self.steps, self.refit_steps = hidden, float(l1), steps, refit_steps
        self.learning_rate, self.bits, self.seed = float(learning_rate), bits, seed
        self._params: dict[str, np.ndarray] | None = None

    # --- training ------------------------------------------------------------------------

    def fit(self, activations: Any, keep: np.ndarray | None = None, steps: int | None = None,
            warm_start: bool = False) -> QSAE:
        """Train on ``activations`` (N, C) or (N, ..., C); ``keep`` masks the encoder's inputs.

        The decoder still reconstructs every channel, masked ones included: a channel left out
        of the input must be recoverable from the others for the reconstruction to stay good.
        """
        x = self._standardize(activations)
        channels = x.shape[1]
        keep = np.ones(channels, bool) if keep is None else np.asarray(keep, bool)
        if keep.shape != (channels,):
            raise ValueError(f"keep has shape {keep.shape}; expected ({channels},)")
        if self._params is None or not warm_start:
            self._params = self._initial(channels)
        self._adam_steps(x, keep.astype(np.float64), self.steps if steps is None else steps)
        return self

    def rank(self, activations: Any) -> Ranking:
        """Train on all channels, then eliminate them one by one (see the module docstring)."""
        x = self._standardize(activations)
        channels = x.shape[1]
        if channels < 2:
            raise ValueError(f"need at least 2 channels to rank, got {channels}")
        self._fit_standardized(x)
        importance = self.importance()
        keep = np.ones(channels, bool)
        order, at_elimination = [], []
        for _ in range(channels - 1):
            current = self.importance()
            candidates = np.flatnonzero(keep)
            lowest = candidates[np.argmin(current[candidates])]  # ties: the lower index
            order.append(int(lowest))
            at_elimination.append(float(current[lowest]))
            keep[lowest] = False
            self._adam_steps(x, keep.astype(np.float64), self.refit_steps)
        last = int(np.flatnonzero(keep)[0])
        order.append(last)
        at_elimination.append(float(self.importance()[last]))
        monotone = np.maximum.accumulate(np.asarray(at_elimination))
        top = monotone[-1] if monotone[-1] > 0 else 1.0
        scores = np.empty(channels)
        scores[np.asarray(order)] = monotone / top
        return Ranking(order=np.asarray(order), scores=scores, importance=importance)

    def importance(self) -> np.ndarray:
        """L1 norm of the quantized encoder weights reading each channel."""
        params = self._trained()
        return np.abs(fake_quantize(params["we"], self.bits)).sum(axis=1)

    def reconstruction_error(self, activations: Any) -> float:
        """Mean squared reconstruction error per channel on centred and scaled ``activations``."""
        x = self._standardize(activations, refit_statistics=False)
        _, reconstruction = self._forward(x, np.ones(x.shape[1]))
        return float(np.mean((x - reconstruction) ** 2))

    # --- internals -----------------------------------------------------------------------

    def _fit_standardized(self, x: np.ndarray) -> None:
        self._params = self._initial(x.shape[1])
        self._adam_steps(x, np.ones(x.shape[1]), self.steps)

    def _trained(self) -> dict[str, np.ndarray]:
        if self._params is None:
            raise ValueError("the QSAE is not trained yet; call fit(activations) or rank(activations) first")
        return self._params

    def _standardize(self, activations: Any, refit_statistics: bool = True) -> np.ndarray:
        x = summarize(activations)
        if len(x) < 2:
            raise ValueError(f"need at least 2 samples of activations, got {len(x)}")
        if not np.all(np.isfinite(x)):
            raise ValueError("activations contain NaN or infinity")
        if refit_statistics or not hasattr(self, "_mean"):
            self._mean = x.mean(axis=0)
            std = x.std(axis=0)
            floor = CONSTANT_RELATIVE_STD * max(float(std.max()), 1e-30)
            # one scale for all channels keeps their relative sizes: a faint channel matters less
            # to the next layer, and its reconstruction weighs less
            rms = float(np.sqrt(np.mean(std ** 2))) or 1.0
            self._scale = np.where(std > floor, rms, np.inf)  # constant channels become exactly 0
        return (x - self._mean) / self._scale

    def _initial(self, channels: int) -> dict[str, np.ndarray]:
        hidden = self.hidden or channels
        rng = np.random.default_rng(self.seed)
        return {"we": rng.normal(0, 1 / np.sqrt(channels), (channels, hidden)), "be": np.zeros(hidden),
                "wd": rng.normal(0, 1 / np.sqrt(hidden), (hidden, channels)), "bd": np.zeros(channels)}

    def _forward(self, x: np.ndarray, keep: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        params = self._trained()
        we = fake_quantize(params["we"], self.bits) * keep[:, None]
        wd = fake_quantize(params["wd"], self.bits)
        code = x @ we + params["be"]
        return code, code @ wd + params["bd"]

    def _adam_steps(self, x: np.ndarray, keep: np.ndarray, steps: int) -> None:
        params = self._trained()
        moments = {name: (np.zeros_like(v), np.zeros_like(v)) for name, v in params.items()}
        beta1, beta2, eps = 0.9, 0.999, 1e-8
        count = len(x)
        for step in range(1, steps + 1):
            code, reconstruction = self._forward(x, keep)
            d_out = 2.0 * (reconstruction - x) / count
            wd_q = fake_quantize(params["wd"], self.bits)
            d_code = d_out @ wd_q.T
            grads = {
                "wd": code.T @ d_out + self.l1 * np.sign(params["wd"]),
                "bd": d_out.sum(axis=0),
                # straight-through: the gradient of q(W) is taken as the gradient of W
                "we": (x.T @ d_code) * keep[:, None] + self.l1 * np.sign(params["we"]),
                "be": d_code.sum(axis=0),
            }
            for name, grad in grads.items():
                m, v = moments[name]
                m[:] = beta1 * m + (1 - beta1) * grad
                v[:] = beta2 * v + (1 - beta2) * grad * grad
                m_hat = m / (1 - beta1 ** step)
                v_hat = v / (1 - beta2 ** step)
                params[name] -= self.learning_rate * m_hat / (np.sqrt(v_hat) + eps)
            # a channel out of the encoder's input keeps no weights: its importance is 0
            params["we"] *= keep[:, None]


def _check_int(value: Any, name: str, minimum: int = 1, allow_none: bool = False) -> None:
    if value is None and allow_none:
        return
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"{name} must be an int >= {minimum}, got {value!r}")
