"""Fit MLPerf Tiny's trained ResNet-8 into a flash budget and show before and after (``make demo``).

A short run so a new user sees the pipeline in minutes: a few thousand CIFAR-10
training images and one epoch of fine-tuning, so the accuracy after is far below
what the benchmark's 8-epoch runs reach (BENCHMARKS.md, "compress"). The
artifact's accuracy is measured on 1,000 CIFAR-10 test images in the TFLite
interpreter; TFLite Micro's agreement with it is in the report.

    python examples/compress_demo.py --out demo_out --flash 64KB [--epochs 1] [--train 5000] [--force]
"""

from __future__ import annotations

import argparse
import sys


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default="demo_out")
    parser.add_argument("--flash", default="64KB", help="flash budget of the artifact (64KB)")
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--train", type=int, default=5000, help="training images (5000)")
    parser.add_argument("--force", action="store_true", help="replace --out if it exists")
    args = parser.parse_args(argv)

    import numpy as np

    import tfprune
    from tfprune.datasets import load_cifar10
    from tfprune.deploy.verify import tflite_accuracy
    from tfprune.models import resnet8

    (x, y), (x_test, y_test) = load_cifar10()
    x, x_test = x.astype(np.float32), x_test[:1000].astype(np.float32)
    train, val = (x[: args.train], y[: args.train]), (x[-1000:], y[-1000:])
    model = resnet8(weights="mlperf")
    before = tfprune.export(model, x[:500], progress=False)
    print(f"before: {before.report['flatbuffer_bytes']:,} B, int8 accuracy "
          f"{tflite_accuracy(before.flatbuffer, x_test, y_test[:1000]):.1%} on 1,000 test images")
    result = tfprune.compress(model, train, val, tfprune.Budget(flash=args.flash), epochs=args.epochs)
    artifact = result.artifact
    accuracy = tflite_accuracy(artifact.reference_flatbuffer or artifact.flatbuffer, x_test, y_test[:1000])
    result.save(args.out, overwrite=args.force)
    print(f"after:  {artifact.report['flatbuffer_bytes']:,} B, int8 accuracy {accuracy:.1%} on the same images, "
          f"TFLite Micro agreement {result.report['final']['tflm_agreement']:.0%}; files in {args.out}/")
    return 0


if __name__ == "__main__":
    sys.exit(main())
