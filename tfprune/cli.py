"""The ``tfprune`` command.

``tfprune convert MODEL --target cortex-m --representative val.npz --out build/``
turns a Keras model into the files a device uses; ``tfprune inspect FILE.tflite``
prints the report for any flatbuffer; ``tfprune reconvene MODEL --data train.npz
--out DIR`` prunes an untrained model at initialization into a smaller one;
``tfprune emulate DIR --inputs x.npz`` runs an exported model on an emulated Cortex-M4.
Bad input gets one line on stderr and exit code 2; a bug in tfprune gets one
line saying so and exit code 1; ``--debug`` shows the full traceback instead
(and what native code printed).

Example:
    >>> from tfprune.datasets import data_dir
    >>> main(["inspect", str(data_dir() / "mlperf_tiny" / "pretrainedResnet_quant.tflite"), "--json"])
    ... # doctest: +ELLIPSIS
    {...
    0
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from types import TracebackType
from typing import Any, Sequence

EXIT_BAD_INPUT = 2
EXIT_INTERNAL_ERROR = 1

#: What tfprune raises about the user's input (when it raises them itself).
INPUT_ERRORS = (ValueError, TypeError, FileExistsError, FileNotFoundError)
#: Errors that are never about the input: raised in tfprune's own code, they are bugs.
PROGRAMMING_ERRORS = (AttributeError, NameError, AssertionError, ImportError)

_PACKAGE = Path(__file__).resolve().parent


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit code."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["bench"]:
        # the benchmark lives beside the library, in the repository, and the library never imports it
        print("tfprune bench: the benchmark is not part of the installed package; run tools/bench from a "
              "tfprune checkout (tools/bench --help)", file=sys.stderr)
        return EXIT_BAD_INPUT
    parser = _parser()
    args = parser.parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    debug_before = os.environ.get("TFPRUNE_DEBUG")
    if args.debug:
        os.environ["TFPRUNE_DEBUG"] = "1"  # captured native output is written back (tfprune._native)
    try:
        return args.run(args)
    except Exception as error:
        if args.debug:
            raise
        if is_bad_input(error):
            print(f"tfprune {args.command}: error: {error}", file=sys.stderr)
            return EXIT_BAD_INPUT
        print(f"tfprune {args.command}: internal error, a bug in tfprune: {type(error).__name__}: "
              f"{str(error).splitlines()[0] if str(error) else ''} (rerun with --debug for the traceback "
              "and report it)", file=sys.stderr)
        return EXIT_INTERNAL_ERROR
    finally:
        if debug_before is None:
            os.environ.pop("TFPRUNE_DEBUG", None)
        else:
            os.environ["TFPRUNE_DEBUG"] = debug_before


def is_bad_input(error: BaseException) -> bool:
    """Whether ``error`` is tfprune's report of bad input, not a bug.

    It is when tfprune's own code raised it (the innermost frame of its
    traceback lies in the package: an error a library raised that tfprune did
    not translate is not a message for the user), its type is one of
    :data:`INPUT_ERRORS`, and nothing it was raised from (its ``__cause__`` or
    ``__context__`` chain) is a :data:`PROGRAMMING_ERRORS` raised in tfprune.

    Example:
        >>> is_bad_input(AttributeError("no attribute 'kernel'"))
        False
    """
    if not isinstance(error, INPUT_ERRORS) or not _raised_in_tfprune(error.__traceback__):
        return False
    seen = set()
    cause = _chained(error)
    while cause is not None and id(cause) not in seen:
        seen.add(id(cause))
        if isinstance(cause, PROGRAMMING_ERRORS) and _raised_in_tfprune(cause.__traceback__):
            return False
        cause = _chained(cause)
    return True


def _chained(error: BaseException) -> BaseException | None:
    return error.__cause__ or (None if error.__suppress_context__ else error.__context__)


def _raised_in_tfprune(traceback: TracebackType | None) -> bool:
    if traceback is None:
        return False
    while traceback.tb_next is not None:
        traceback = traceback.tb_next
    return _PACKAGE in Path(traceback.tb_frame.f_code.co_filename).resolve().parents


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="tfprune", description=__doc__.split("\n\n")[0])
    parser.add_argument("--debug", action="store_true",
                        help="show the full traceback of an error and what native code printed")
    commands = parser.add_subparsers(dest="command", required=True)
    _add_convert(commands)
    _add_inspect(commands)
    _add_reconvene(commands)
    _add_emulate(commands)
    _add_compress(commands)
    return parser


def _add_convert(commands: argparse._SubParsersAction) -> None:
    convert = commands.add_parser("convert", help="Keras model -> model.tflite, C sources and report.json")
    convert.add_argument("model", help=".keras or .h5 file, or a SavedModel directory")
    convert.add_argument("--target", choices=["cortex-m", "android", "android-lce"], default="cortex-m")
    convert.add_argument("--representative", metavar="FILE.npz",
                         help="calibration inputs: array 'x' (or the only array); first 500 used")
    convert.add_argument("--verify-data", metavar="FILE.npz",
                         help="inputs 'x' (and labels 'y') to verify on; default the representative samples")
    convert.add_argument("--quant", choices=["int8", "float16"], default=None, help="default int8")
    convert.add_argument("--io", choices=["int8", "uint8", "float"], default=None,
                         help="input/output type; default int8 for cortex-m, float for android")
    convert.add_argument("--compress", choices=["auto", "off", "lut", "prune"], default="auto",
                         help="TFLite Micro DECODE compression: per tensor the smallest of plain, LUT (<= 16 values "
                              "per channel) and PRUNE (bitmask + nonzeros) (auto), one of them, or off")
    convert.add_argument("--no-lean", action="store_true",
                         help="keep the converter's flatbuffer (default for cortex-m: drop what TFLite Micro never "
                              "reads)")
    convert.add_argument("--preprocessing", help="how raw data becomes the model input, for the C header")
    convert.add_argument("--no-verify", action="store_true", help="skip running the artifact against a reference")
    convert.add_argument("--emulate", action="store_true",
                         help="cortex-m: also run it on an emulated Cortex-M4 (QEMU, CMSIS-NN): arena and ticks")
    convert.add_argument("--out", required=True, metavar="DIR", help="output directory")
    convert.add_argument("--force", action="store_true", help="replace DIR if it exists")
    convert.add_argument("--quiet", action="store_true", help="no progress bars")
    _add_debug(convert)
    convert.set_defaults(run=_convert)


def _add_inspect(commands: argparse._SubParsersAction) -> None:
    inspect = commands.add_parser("inspect", help="report of any .tflite flatbuffer (DECODE-encoded tensors included)")
    inspect.add_argument("file", help=".tflite flatbuffer")
    inspect.add_argument("--json", action="store_true", help="print report.json instead of the table")
    _add_debug(inspect)
    inspect.set_defaults(run=_inspect)


def _add_reconvene(commands: argparse._SubParsersAction) -> None:
    from tfprune.prune.pai import PAI_METHODS, SCOPES

    reconvene = commands.add_parser("reconvene", help="untrained model -> smaller untrained model (Reconvene)")
    reconvene.add_argument("model", help="an untrained .keras or .h5 model, or a SavedModel directory")
    reconvene.add_argument("--data", metavar="FILE.npz", help="labelled samples 'x' and 'y' (needed by snip, grasp)")
    reconvene.add_argument("--samples", type=int, default=256, help="samples of --data the scores read (256)")
    reconvene.add_argument("--method", choices=PAI_METHODS, default="synflow", help="PaI score (synflow)")
    reconvene.add_argument("--sparsity", type=float, default=0.9, help="PaI target sparsity (0.9)")
    reconvene.add_argument("--scope", choices=SCOPES, default="global", help="PaI ranking (global)")
    select = reconvene.add_mutually_exclusive_group()
    select.add_argument("--threshold", type=float, help="rectify layers with sensitivity <= this (0.3)")
    select.add_argument("--max-bytes", type=int, help="rectify until int8 weights take at most this many bytes")
    select.add_argument("--max-macs", type=int, help="rectify until the model runs at most this many MACs")
    reconvene.add_argument("--dense-rest", action="store_true", help="drop the PaI masks of the other layers")
    reconvene.add_argument("--seed", type=int, default=0)
    reconvene.add_argument("--out", required=True, metavar="DIR", help="writes DIR/model.keras and DIR/reconvene.json")
    reconvene.add_argument("--force", action="store_true", help="replace DIR if it exists")
    _add_debug(reconvene)
    reconvene.set_defaults(run=_reconvene)


def _add_debug(command: argparse.ArgumentParser) -> None:
    # after the command as well as before it; SUPPRESS keeps a --debug given before the command
    command.add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                         help="show the full traceback of an error and what native code printed")


def _reconvene(args: argparse.Namespace) -> int:
    import json
    import shutil
    import tempfile

    out = _fresh_output(args.out, args.force)
    data = None
    if args.data is not None:
        import numpy as np

        from tfprune.keras_model import load_npz_samples

        x = load_npz_samples(args.data)[: args.samples]
        with np.load(args.data) as archive:
            if "y" not in archive:
                raise ValueError(f"--data {args.data} has no labels: store them as array 'y' beside 'x'")
            data = (x, archive["y"][: args.samples])
    from tfprune.deploy.artifact import replace_directory
    from tfprune.keras_model import load_model
    from tfprune.prune.reconvene import reconvene

    budget = {key: value for key, value in (("bytes", args.max_bytes), ("macs", args.max_macs)) if value is not None}
    result = reconvene(load_model(args.model), data, args.method, args.sparsity, scope=args.scope,
                       threshold=args.threshold, budget=budget or None,
                       unrectified="dense" if args.dense_rest else "masked", seed=args.seed)
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        result.model.save(staging / "model.keras")
        (staging / "reconvene.json").write_text(json.dumps(result.report.as_dict(), indent=2, default=float) + "\n")
        replace_directory(staging, out)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    print(result.report)
    print(f"\nwrote model.keras (untrained: train it, then `tfprune convert`) and reconvene.json to {out}/")
    return 0


def _fresh_output(directory: str, force: bool) -> Any:
    out = Path(directory)
    if out.exists() and (not out.is_dir() or any(out.iterdir())) and not force:
        raise FileExistsError(f"{out} already exists; pass --force to replace it")
    return out


def _convert(args: argparse.Namespace) -> int:
    out = _fresh_output(args.out, args.force)
    for option in ("representative", "verify_data"):
        value = getattr(args, option)
        if value is not None and not Path(value).is_file():
            raise ValueError(f"--{option.replace('_', '-')} {value}: no such file")
    from tfprune.deploy import export
    from tfprune.keras_model import load_model

    model = load_model(args.model)
    artifact = export(
        model,
        representative_data=args.representative,
        target=args.target,
        verify_data=args.verify_data,
        quantization=args.quant,
        io=args.io,
        compress=args.compress,
        lean=False if args.no_lean else None,
        verify=not args.no_verify,
        preprocessing=args.preprocessing,
        emulate=args.emulate,
        progress=not args.quiet,
    )
    artifact.save(out, overwrite=args.force)
    print(artifact.report)
    print(f"\nwrote {', '.join(sorted(artifact.files()))} to {out}/")
    return 0


def _inspect(args: argparse.Namespace) -> int:
    from tfprune.deploy import inspect_flatbuffer

    report = inspect_flatbuffer(args.file)
    print(report.to_json() if args.json else report, end="" if args.json else "\n")
    return 0


def _add_emulate(commands: argparse._SubParsersAction) -> None:
    emulate = commands.add_parser("emulate", help="run an exported model on an emulated Cortex-M4 (QEMU)")
    emulate.add_argument("dir", help="the folder `tfprune convert --target cortex-m --out DIR` wrote, or a .tflite")
    emulate.add_argument("--inputs", metavar="FILE.npz",
                         help="samples 'x' (or the only array): int8 as they are, floats quantized; "
                              "none: only the arena is measured")
    emulate.add_argument("--kernels", choices=["cmsis_nn", "reference"], default="cmsis_nn")
    emulate.add_argument("--json", action="store_true", help="print the figures and outputs as JSON")
    emulate.set_defaults(run=_emulate)


def _emulate(args: argparse.Namespace) -> int:
    import json

    from tfprune.deploy.emulate import emulate

    result = emulate(args.dir, args.inputs, args.kernels)
    if args.json:
        print(json.dumps(result.as_dict(), indent=2))
        return 0
    ticks = result.ticks_per_inference
    rows = [
        ("measured on", result.measured_on),
        ("inferences", str(len(result.ticks))),
        ("ticks per inference", "-" if ticks is None else
         f"{ticks:,} (median; ~{result.instructions_per_inference / 1e6:.1f} M instructions: compare as ratios)"),
        ("arena used", f"{result.arena_bytes:,} of {result.arena_size:,} B"),
        ("image", f"{result.flash_bytes:,} B flash, {result.ram_bytes:,} B RAM (.data + .bss)"),
    ]
    rows += [(f"output {i}", " ".join(str(int(v)) for v in row.ravel()[:16])) for i, row in
             enumerate(result.outputs[:8])]
    print("\n".join(f"  {name:<20} {value}" for name, value in rows))
    return 0


def _add_compress(commands: argparse._SubParsersAction) -> None:
    from tfprune.prune.compress import SELECTORS, WEIGHT_ENCODINGS

    compress = commands.add_parser("compress", help="trained model + device budget -> the most accurate artifact "
                                                    "that fits")
    compress.add_argument("model", help="a trained .keras or .h5 classifier, or a SavedModel directory")
    compress.add_argument("--train", required=True, metavar="TRAIN.npz", help="training samples 'x' and labels 'y'")
    compress.add_argument("--val", required=True, metavar="VAL.npz", help="validation samples 'x' and labels 'y'")
    compress.add_argument("--flash", help="artifact bytes, e.g. 48KB (1 KB = 1024 B)")
    compress.add_argument("--arena", help="TFLite Micro arena bytes, e.g. 40KB")
    compress.add_argument("--macs", type=int, help="multiply-accumulates per inference")
    compress.add_argument("--time", type=float, help="time per inference as a ratio to the unpruned model")
    compress.add_argument("--epochs", type=int, default=10, help="fine-tuning epochs in total (10)")
    compress.add_argument("--selector", choices=SELECTORS, default="l1", help="which channels go (l1)")
    compress.add_argument("--weights", choices=WEIGHT_ENCODINGS, default="lut", help="weight encoding (lut)")
    compress.add_argument("--clusters", type=_cluster_count, default="auto",
                          help="values per channel of the LUT weights, 2-16 (16: 4-bit), or auto: plan for 16, 8 "
                               "and 4 and keep the least loss (auto)")
    compress.add_argument("--sparsity", type=float,
                          help="with --weights prune: share of zeros per kernel (default: the least that fits)")
    compress.add_argument("--qat", action="store_true",
                          help="end with quantization-aware training (tfmot; keeps the clusters or zeros)")
    compress.add_argument("--distill", action=argparse.BooleanOptionalAction, default=False,
                          help="also fine-tune against the original model's soft targets (off: it did not pay in "
                               "the benchmark)")
    compress.add_argument("--search-steps", type=int, default=8,
                          help="bisection steps of the width search (8; fewer is faster, less close to the budget)")
    compress.add_argument("--seed", type=int, default=0)
    compress.add_argument("--out", required=True, metavar="DIR",
                          help="writes DIR/model.keras, the artifact's files and DIR/compress.json")
    compress.add_argument("--resume", action="store_true", help="continue an interrupted run from DIR's checkpoints")
    compress.add_argument("--force", action="store_true", help="replace DIR if it exists")
    _add_debug(compress)
    compress.set_defaults(run=_compress)


def _cluster_count(text: str) -> int | str:
    """``--clusters``: ``auto`` or a count (the range is compress's to check)."""
    if text == "auto":
        return text
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected auto or a number of values from 2 to 16, got {text!r}") from None


def _compress(args: argparse.Namespace) -> int:
    from tfprune.keras_model import load_model
    from tfprune.prune.budget import Budget
    from tfprune.prune.compress import compress

    out = Path(args.out)
    checkpoints = out.parent / f".{out.name}.stages"
    if not args.resume:
        out = _fresh_output(args.out, args.force)
    elif not checkpoints.is_dir():
        raise ValueError(f"--resume: {checkpoints} holds no stages of an earlier run; start without --resume")
    budget = Budget(flash=args.flash, arena=args.arena, macs=args.macs, time=args.time)
    train, val = _labelled_npz(args.train, "--train"), _labelled_npz(args.val, "--val")
    result = compress(load_model(args.model), train, val, budget, epochs=args.epochs, selector=args.selector,
                      weights=args.weights, clusters=args.clusters, sparsity=args.sparsity,
                      qat=args.qat, distill=args.distill, checkpoint=checkpoints,
                      search_steps=args.search_steps, seed=args.seed)
    result.save(out, overwrite=args.force or args.resume)
    import shutil

    shutil.rmtree(checkpoints, ignore_errors=True)
    final = result.report["final"]
    print(f"{out}: {final['flash']:,} B flash, {final['arena']:,} B arena, int8 accuracy {final['accuracy']:.2%} "
          f"on --val, TFLite Micro agreement {final['tflm_agreement']:.0%}")
    return 0


def _labelled_npz(path: str, flag: str) -> tuple[Any, Any]:
    import numpy as np

    from tfprune.keras_model import load_npz_samples

    x = load_npz_samples(path)
    with np.load(path) as archive:
        if "y" not in archive:
            raise ValueError(f"{flag} {path} has no labels: store them as array 'y' beside 'x'")
        return x, archive["y"]


if __name__ == "__main__":
    sys.exit(main())
