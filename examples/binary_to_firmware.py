"""From a larq binary network to the files a Cortex-M firmware and an Android app use, by ARSP.

Trains a binary ResNet-8 (or small VGG) on CIFAR-10, prunes its binary layers with ARSP
(reservoir sampling, PPO keep ratios, SGD fine-tuning) and writes

    OUT/cortex-m/     model.tflite (int8, 1-2 bit LUT weights), model_data.cc/.h, report.json
    OUT/android-lce/  model.tflite (Larq Compute Engine binary ops), report.json
    OUT/arsp.json     the ARSP report and the deployment figures

The defaults run in a few minutes on a laptop CPU (``--small``: a minute); raise
``--train-samples``, ``--epochs`` and ``--episodes`` for a real model.

    python examples/binary_to_firmware.py --out /tmp/bnn --small
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True, help="output directory (must not exist or be empty; --force)")
    parser.add_argument("--model", choices=("resnet8", "vgg"), default="resnet8")
    parser.add_argument("--granularity", choices=("filters", "connections"), default="filters",
                        help="filters (default) keep the model 1-bit and make it smaller; connections make it "
                             "ternary, which both artifacts pay for")
    parser.add_argument("--optimizer", choices=("adam", "bop"), default="adam")
    parser.add_argument("--train-samples", type=int, default=10_000)
    parser.add_argument("--epochs", type=int, default=3, help="training epochs before pruning")
    parser.add_argument("--finetune-epochs", type=int, default=2)
    parser.add_argument("--episodes", type=int, default=12, help="PPO episodes")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--small", action="store_true", help="2,000 images, 1 epoch, 4 episodes")
    parser.add_argument("--force", action="store_true", help="replace a non-empty --out")
    args = parser.parse_args(argv)
    out = Path(args.out)
    if out.exists() and any(out.iterdir()) and not args.force:
        print(f"error: {out} exists and is not empty; pass --force to replace it", file=sys.stderr)
        return 2
    if args.small:
        args.train_samples, args.epochs, args.finetune_epochs, args.episodes = 2_000, 1, 1, 4

    import numpy as np
    import tensorflow as tf

    from tfprune.deploy import binary as deploy
    from tfprune.prune.binary import arsp
    from tfprune.prune.binary import training as models
    from tfprune.datasets import load_cifar10
    from tfprune.models import binary_resnet8, binary_small_vgg

    tf.keras.utils.set_random_seed(args.seed)
    (x, y), (x_test, y_test) = load_cifar10()
    x, y = x[: args.train_samples].astype(np.float32), y[: args.train_samples]
    x_test, y_test = x_test[:1000].astype(np.float32), y_test[:1000]
    model = (binary_resnet8 if args.model == "resnet8" else binary_small_vgg)(seed=args.seed)
    model.compile(models.optimizer(args.optimizer), "sparse_categorical_crossentropy", metrics=["accuracy"])
    model.fit(x, y, batch_size=64, epochs=args.epochs, verbose=2, callbacks=[models.FlipRatio(every=50)])
    models.summary(model)

    pruned, report = arsp.arsp(model, (x, y), validation_samples=max(len(x) // 10, 100),
                               granularity=args.granularity, episodes=args.episodes,
                               finetune_epochs=args.finetune_epochs, seed=args.seed)
    print(f"ARSP keep ratios {report.ratios}, density {report.density:.1%}, validation accuracy "
          f"{report.accuracy_dense:.1%} dense -> {report.accuracy_finetuned:.1%} pruned and fine-tuned")
    both = deploy.export_both(pruned, x[:500], (x_test, y_test), progress=True)
    both.save(out, overwrite=args.force)
    figures = both.figures
    (out / "arsp.json").write_text(json.dumps({"arsp": report.as_dict(), "deployment": figures}, indent=2))
    print(f"Cortex-M: {figures['cortex_m_bytes']:,} B (int8 {figures['cortex_m_uncompressed_bytes']:,} B before "
          f"LUT), test accuracy {figures['cortex_m_accuracy']:.1%} (larq model {figures['larq_accuracy']:.1%}); "
          f"Android LCE: {figures['android_lce_bytes']:,} B. Files in {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
