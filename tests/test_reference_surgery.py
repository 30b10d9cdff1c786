"""Channel removal on the reference networks themselves: smaller, same outputs, deployable."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf

import tfprune
from tfprune import models
from tfprune.core import masks
from tfprune.core.graph import channel_groups


def randomize_statistics(model: tf.keras.Model, seed: int) -> None:
    """Random biases and BatchNorm statistics, so that a removed channel would show if mishandled."""
    rng = np.random.default_rng(seed)
    for layer in model.layers:
        if isinstance(layer, tf.keras.layers.BatchNormalization):
            gamma, beta, mean, variance = layer.get_weights()
            layer.set_weights([rng.uniform(0.5, 1.5, gamma.shape), rng.normal(0, 0.2, beta.shape),
                               rng.normal(0, 0.2, mean.shape), rng.uniform(0.5, 1.5, variance.shape)])
        elif getattr(layer, "use_bias", False) and layer.bias is not None:
            layer.bias.assign(rng.normal(0, 0.1, layer.bias.shape))


BUILDERS = {
    "resnet8": (lambda: models.resnet8(seed=3), (32, 32, 3), 255.0),
    "ds_cnn": (lambda: models.ds_cnn(seed=3), (49, 10, 1), 1.0),
    "mobilenet_v1": (lambda: models.mobilenet_v1(seed=3), (96, 96, 3), 255.0),
    "small_vgg": (lambda: models.small_vgg(seed=3), (32, 32, 3), 255.0),
}


@pytest.mark.parametrize("name", sorted(BUILDERS))
def test_removing_random_channel_groups_keeps_the_masked_outputs(name):
    build, shape, scale = BUILDERS[name]
    model = build()
    randomize_statistics(model, seed=1)
    rng = np.random.default_rng(0)
    wrapped = masks.wrap(model)
    groups = [group for group in channel_groups(model) if group.prunable and group.size > 2]
    for group in rng.choice(len(groups), size=min(4, len(groups)), replace=False):
        group = groups[group]
        keep = np.ones(group.size, bool)
        keep[rng.choice(group.size, size=group.size // 3, replace=False)] = False
        depthwise = [m for m in group.carriers
                     if isinstance(model.get_layer(m.layer), tf.keras.layers.DepthwiseConv2D)]
        for member in (*group.producers, *depthwise):  # a depthwise carrier re-adds its bias: mask it too
            layer = wrapped.get_layer(member.layer)
            channel_keep = layer.get_channel_mask().astype(bool)
            channel_keep[member.offset:member.offset + group.size] &= keep
            layer.set_channel_mask(channel_keep)
    smaller = tfprune.remove_masked_channels(wrapped)
    x = rng.uniform(0, scale, (4, *shape)).astype(np.float32)
    np.testing.assert_allclose(smaller(x), wrapped(x), atol=2e-5)
    assert smaller.count_params() < model.count_params()

    calibration = rng.uniform(0, scale, (16, *shape)).astype(np.float32)
    dense_report = tfprune.export(model, calibration, verify=False, progress=False).report
    report = tfprune.export(smaller, calibration, verify_data=calibration[:8], progress=False).report
    assert report["macs"] < dense_report["macs"]
    assert report["flatbuffer_bytes"] < dense_report["flatbuffer_bytes"]
    assert report["verification"]["top1_agreement"] == 1.0 and report["tflm"]["arena_bytes"] > 0
