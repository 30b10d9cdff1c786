"""Keep MLPerf's ResNet-8 pruned while CIFAR-10 drifts, then export the firmware files.

The QSAE story (seed 000) end to end: wrap the trained network, add one
``tfprune.prune.qsae.PruningController`` to ``model.fit``, train through the phases of a drifting
stream (class mix and corruption change), let the controller re-derive the channel masks when
validation accuracy drops or the activations drift, re-derive once more on the latest field data
with ``controller.update`` (no labels needed), and export the pruned model for Cortex-M.

    python examples/qsae_drift.py --out qsae_out [--train-per-phase 2000] [--epochs 1] [--force]
"""

from __future__ import annotations

import argparse
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def main() -> None:
    args = _arguments()
    import tensorflow as tf

    import tfprune
    from tfprune.drift import cifar10_drift_stream
    from tfprune.models import resnet8
    from tfprune.prune.qsae import PruningController

    tf.keras.utils.set_random_seed(args.seed)
    stream = cifar10_drift_stream(train_per_phase=args.train_per_phase, test_per_phase=args.test_per_phase,
                                  seed=args.seed)
    model = tfprune.wrap(resnet8(weights="mlperf"))
    model.compile(optimizer=tf.keras.optimizers.Adam(3e-4), loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    current = {"x": stream[0].x_train}
    controller = PruningController(
        layers=args.layers, target_sparsity=args.sparsity, data=lambda: current["x"][-args.samples:],
        monitor="val_accuracy", trigger_drop=0.03, drift_threshold=0.02, samples=args.samples,
        log_dir=os.path.join(args.out + "_logs") if args.tensorboard else None, seed=args.seed)

    for phase in stream:
        current["x"] = phase.x_train
        split = int(0.9 * len(phase.x_train))
        model.fit(phase.x_train[:split], phase.y_train[:split], batch_size=64, epochs=args.epochs,
                  validation_data=(phase.x_train[split:], phase.y_train[split:]), callbacks=[controller], verbose=0)
        _, accuracy = model.evaluate(phase.x_test, phase.y_test, verbose=0)
        print(f"phase {phase.name:<9} test accuracy {accuracy:.2%}, "
              f"{controller.events[-1]['channels_pruned']}/{controller.events[-1]['channels_total']} channels pruned")

    # In the field: new unlabelled images; re-derive only if their activations drifted.
    field = stream[-1].x_test[: args.samples]
    event = controller.update(model, field, force=False)
    print("field update:", "no drift, masks kept" if event is None else f"re-derived ({event['reason']})")

    artifact = tfprune.export(model, representative_data=stream[-1].x_train[:500], target="cortex-m",
                              verify_data=(stream[-1].x_test, stream[-1].y_test),
                              preprocessing="RGB pixels 0..255 as float, quantized with the input scale and zero point")
    artifact.save(args.out, overwrite=args.force)
    print(artifact.report)
    print(f"\nwrote {', '.join(sorted(artifact.files()))} to {args.out}/")


def _arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default="qsae_out", help="output directory for the firmware files")
    parser.add_argument("--force", action="store_true", help="replace --out if it exists")
    parser.add_argument("--train-per-phase", type=int, default=5_000)
    parser.add_argument("--test-per-phase", type=int, default=1_000)
    parser.add_argument("--epochs", type=int, default=2, help="epochs per phase")
    parser.add_argument("--layers", default="all", choices=("all", "penultimate"),
                        help="channel groups to prune: every group, or the one the classifier reads")
    parser.add_argument("--sparsity", type=float, default=0.5, help="share of each channel group to prune")
    parser.add_argument("--samples", type=int, default=256, help="images the controller reads per derivation")
    parser.add_argument("--tensorboard", action="store_true", help="log tau, KL and sparsity to <out>_logs/")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    if args.train_per_phase < 20 or args.test_per_phase < 1 or args.epochs < 1 or args.samples < 2:
        parser.error("--train-per-phase >= 20, --test-per-phase >= 1, --epochs >= 1 and --samples >= 2, please")
    if not 0 <= args.sparsity < 1:
        parser.error("--sparsity must be in [0, 1)")
    if os.path.exists(args.out) and not args.force:
        parser.error(f"{args.out} exists; pass --force to replace it")
    return args


if __name__ == "__main__":
    main()
