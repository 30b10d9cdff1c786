"""Train a small CNN on CIFAR-10 for a few minutes, export it for Cortex-M, print the report.

The main job of the README (``make demo``). Accuracy is measured on the int8
flatbuffer in the TFLite Micro interpreter, on held-out test images.

    python examples/train_and_export.py --out demo_out [--epochs 5] [--force]
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
    from tfprune.models import small_cnn

    tf.keras.utils.set_random_seed(args.seed)
    (x_train, y_train), (x_test, y_test) = load_cifar10(args.data)
    x_train, y_train = x_train[: args.train_samples].astype(np.float32), y_train[: args.train_samples]
    x_check, y_check = x_test[: args.test_samples].astype(np.float32), y_test[: args.test_samples]

    model = small_cnn((32, 32, 3), classes=10, widths=(16, 32, 64), seed=args.seed)
    model.compile(optimizer=tf.keras.optimizers.Adam(2e-3),
                  loss=tf.keras.losses.SparseCategoricalCrossentropy(from_logits=True), metrics=["accuracy"])
    start = time.perf_counter()
    model.fit(x_train, y_train, batch_size=64, epochs=args.epochs, validation_split=0.05, verbose=2)
    print(f"trained {args.epochs} epochs on {len(x_train):,} images in {time.perf_counter() - start:.0f} s")
    _, float_accuracy = model.evaluate(x_check, y_check, verbose=0)
    print(f"float Keras model, top-1 on {len(x_check):,} CIFAR-10 test images: {float_accuracy:.2%}")

    artifact = tfprune.export(
        model,
        representative_data=x_train[:500],
        target="cortex-m",
        verify_data=(x_check, y_check),
        preprocessing="RGB pixels 0..255 as float, quantized with the input scale and zero point",
    )
    artifact.save(args.out, overwrite=args.force)
    print(artifact.report)
    print(f"\nwrote {', '.join(sorted(artifact.files()))} to {args.out}/")


def _arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default="demo_out", help="output directory")
    parser.add_argument("--force", action="store_true", help="replace --out if it exists")
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--train-samples", type=int, default=50_000)
    parser.add_argument("--test-samples", type=int, default=1_000, help="test images the artifact is checked on")
    parser.add_argument("--data", default=None, help="cifar10.npz (default: $TFPRUNE_DATA or ../shared/data)")
    parser.add_argument("--seed", type=int, default=0)
    return parser.parse_args()


if __name__ == "__main__":
    main()
