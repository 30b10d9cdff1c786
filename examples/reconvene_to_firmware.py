"""From an untrained Keras model to firmware files with Reconvene, in one script.

Reconvene prunes ResNet-8 before any training (seconds), turning the layers
least sensitive to structured pruning into physically smaller layers; the
smaller model trains like any model and exports for Cortex-M. Accuracy,
bytes and time are measured on the int8 flatbuffer in TFLite Micro.

    python examples/reconvene_to_firmware.py --out reconvene_out [--epochs 5] [--sparsity 0.9] [--force]
"""

from __future__ import annotations

import argparse
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402


def main() -> None:
    args = _arguments()
    import tensorflow as tf

    import tfprune
    from tfprune.datasets import load_cifar10
    from tfprune.models import resnet8

    tf.keras.utils.set_random_seed(args.seed)
    (x_train, y_train), (x_test, y_test) = load_cifar10(args.data)
    x_train, y_train = x_train[: args.train_samples].astype(np.float32), y_train[: args.train_samples]
    x_check, y_check = x_test[: args.test_samples].astype(np.float32), y_test[: args.test_samples]

    untrained = resnet8(seed=args.seed)                      # takes raw 0..255 pixels
    result = tfprune.reconvene(untrained, (x_train[:256], y_train[:256]), method=args.method,
                               target_sparsity=args.sparsity, seed=args.seed)
    print(result.report)

    model = result.model
    model.compile(optimizer=tf.keras.optimizers.Adam(1e-3),
                  loss=tf.keras.losses.SparseCategoricalCrossentropy(), metrics=["accuracy"])
    start = time.perf_counter()
    model.fit(x_train, y_train, batch_size=64, epochs=args.epochs, verbose=2)
    print(f"trained {args.epochs} epochs on {len(x_train):,} images in {time.perf_counter() - start:.0f} s")

    artifact = tfprune.export(model, representative_data=x_train[:500], target="cortex-m",
                              verify_data=(x_check, y_check),
                              preprocessing="RGB pixels 0..255 as float, quantized with the input scale and zero point")
    artifact.save(args.out, overwrite=args.force)
    print(artifact.report)
    print(f"\nwrote {', '.join(sorted(artifact.files()))} to {args.out}/ (see firmware/cortex_m/README.md)")


def _arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default="reconvene_out", help="output directory")
    parser.add_argument("--force", action="store_true", help="replace --out if it exists")
    parser.add_argument("--method", default="synflow", help="PaI score: synflow, snip, grasp, magnitude, random")
    parser.add_argument("--sparsity", type=float, default=0.9, help="PaI target sparsity")
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--train-samples", type=int, default=50_000)
    parser.add_argument("--test-samples", type=int, default=1_000, help="test images the artifact is checked on")
    parser.add_argument("--data", default=None, help="cifar10.npz (default: $TFPRUNE_DATA or ../shared/data)")
    parser.add_argument("--seed", type=int, default=0)
    return parser.parse_args()


if __name__ == "__main__":
    main()
