"""Training binary networks: Adam or larq's Bop, the flip ratio, larq's model summary.

The binary models themselves are :func:`tfprune.models.binary_resnet8` and
:func:`tfprune.models.binary_small_vgg` (binary inner convs, first and last layer in
full precision); this module adds what training and inspecting them needs.

Example:
    >>> type(optimizer("bop")).__name__
    'CaseOptimizer'
"""

from __future__ import annotations

from typing import Any

import numpy as np
import tensorflow as tf

OPTIMIZERS = ("adam", "bop")


def optimizer(kind: str = "adam", learning_rate: float = 1e-3, threshold: float = 1e-8, gamma: float = 1e-4) -> Any:
    """Adam (the seed's choice, lr 0.001) or larq's Bop for the binary weights with Adam for the rest.

    Bop (Helwegen et al. 2019) flips a binary weight when its gradient's moving
    average (rate ``gamma``) exceeds ``threshold``; it trains the latent weights of
    layers with a 1-bit kernel quantizer and leaves their magnitudes at ±1, so
    magnitude-based scores see no difference between them.

    Example:
        >>> type(optimizer("adam", 3e-4)).__name__
        'Adam'
    """
    if kind not in OPTIMIZERS:
        raise ValueError(f"unknown optimizer {kind!r}; choose one of {', '.join(OPTIMIZERS)}")
    if not learning_rate > 0:
        raise ValueError(f"learning_rate must be positive, got {learning_rate!r}")
    if kind == "adam":
        return tf.keras.optimizers.Adam(learning_rate)
    import larq as lq

    return lq.optimizers.CaseOptimizer(
        (lq.optimizers.Bop.is_binary_variable, lq.optimizers.Bop(threshold=threshold, gamma=gamma)),
        default_optimizer=tf.keras.optimizers.legacy.Adam(learning_rate),  # larq 0.14 takes legacy ones
    )


class FlipRatio(tf.keras.callbacks.Callback):
    """Logs ``flip_ratio``: the share of binary weights whose sign changed since the last check.

    larq's own flip-ratio metric sits in the kernel quantizer (``lq.context.metrics_scope``)
    and is counted per step; this callback reads the binary kernels (masked ones
    included, wrapped or not) every ``every`` batches and at each epoch's end, so it
    works on the models ``tfprune.wrap`` returns. The last value per layer is in
    ``per_layer``; the epoch's mean goes into the logs (and so to TensorBoard).

    Example:
        >>> from tfprune.models import binary_small_vgg
        >>> model = binary_small_vgg(input_shape=(8, 8, 3))
        >>> model.compile("adam", "sparse_categorical_crossentropy")
        >>> x, y = np.random.rand(16, 8, 8, 3).astype("float32") * 255, np.arange(16) % 10
        >>> flips = FlipRatio(every=1)
        >>> logs = model.fit(x, y, batch_size=8, epochs=1, verbose=0, callbacks=[flips]).history
        >>> 0.0 <= logs["flip_ratio"][0] <= 1.0
        True
    """

    def __init__(self, every: int = 1) -> None:
        super().__init__()
        if isinstance(every, bool) or not isinstance(every, int) or every < 1:
            raise ValueError(f"every={every!r} must be a positive number of batches")
        self.every = every
        self.per_layer: dict[str, float] = {}
        self._previous: dict[str, np.ndarray] = {}
        self._ratios: list[float] = []
        self._step = 0

    def _signs(self) -> dict[str, np.ndarray]:
        from tfprune.core.masks import effective_kernel

        from tfprune.prune.binary.reservoir import binary_layers

        signs = {}
        for name in binary_layers(self.model):
            layer = self.model.get_layer(name)
            kernel = effective_kernel(layer)
            signs[name] = np.sign(kernel)
        return signs

    def _check(self) -> None:
        signs = self._signs()
        flipped = total = 0
        for name, value in signs.items():
            if name in self._previous:
                changed = int(np.count_nonzero(value != self._previous[name]))
                self.per_layer[name] = changed / value.size
                flipped, total = flipped + changed, total + value.size
        if total:
            self._ratios.append(flipped / total)
        self._previous = signs

    def on_train_begin(self, logs: Any = None) -> None:
        self._previous, self._step = self._signs(), 0

    def on_train_batch_end(self, batch: int, logs: Any = None) -> None:
        self._step += 1
        if self._step % self.every == 0:
            self._check()

    def on_epoch_end(self, epoch: int, logs: Any = None) -> None:
        if self._step % self.every:
            self._check()
        if logs is not None and self._ratios:
            logs["flip_ratio"] = float(np.mean(self._ratios))
        self._ratios = []

    def get_config(self) -> dict[str, Any]:
        return {"every": self.every}


def summary(model: Any, print_fn: Any = None) -> None:
    """larq's model summary (bits, memory, binarized MACs per layer) of the model as deployed.

    Masks are folded and pruned channels cut out first, so the counts are those of
    the pruned model.

    Example:
        >>> from tfprune.models import binary_small_vgg
        >>> lines = []
        >>> summary(binary_small_vgg(input_shape=(8, 8, 3)), print_fn=lines.append)
        >>> any("Total params" in line for line in lines)
        True
    """
    import larq as lq

    from tfprune.core.surgery import without_masks

    lq.models.summary(without_masks(model), print_fn=print_fn)
