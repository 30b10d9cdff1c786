"""The ``tfprune`` command.

``tfprune convert MODEL --target cortex-m --representative val.npz --out build/``
turns a Keras model into the files a device uses; ``tfprune inspect FILE.tflite``
prints the report for any flatbuffer. Bad input gets one line on stderr and
exit code 2.

Example:
    >>> main(["inspect", "../shared/data/mlperf_tiny/pretrainedResnet_quant.tflite", "--json"])  # doctest: +ELLIPSIS
    {...
    0
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Sequence

EXIT_BAD_INPUT = 2


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit code."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["bench"]:
        from tfprune.bench.cli import main as bench_main

        return bench_main(argv[1:])
    parser = _parser()
    args = parser.parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    try:
        return args.run(args)
    except (ValueError, TypeError, FileExistsError, FileNotFoundError) as error:
        print(f"tfprune {args.command}: error: {error}", file=sys.stderr)
        return EXIT_BAD_INPUT


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="tfprune", description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    _add_convert(commands)
    _add_inspect(commands)
    commands.add_parser("bench", help="benchmarks; see `tfprune bench --help`")
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
    convert.add_argument("--compress", choices=["auto", "off", "lut"], default="auto",
                         help="TFLite Micro LUT compression of weights with <= 16 values per channel")
    convert.add_argument("--preprocessing", help="how raw data becomes the model input, for the C header")
    convert.add_argument("--no-verify", action="store_true", help="skip running the artifact against a reference")
    convert.add_argument("--out", required=True, metavar="DIR", help="output directory")
    convert.add_argument("--force", action="store_true", help="replace DIR if it exists")
    convert.add_argument("--quiet", action="store_true", help="no progress bars")
    convert.set_defaults(run=_convert)


def _add_inspect(commands: argparse._SubParsersAction) -> None:
    inspect = commands.add_parser("inspect", help="report of any .tflite flatbuffer")
    inspect.add_argument("file", help=".tflite flatbuffer")
    inspect.add_argument("--json", action="store_true", help="print report.json instead of the table")
    inspect.set_defaults(run=_inspect)


def _convert(args: argparse.Namespace) -> int:
    from pathlib import Path

    out = Path(args.out)
    if out.exists() and (not out.is_dir() or any(out.iterdir())) and not args.force:
        raise FileExistsError(f"{out} already exists; pass --force to replace it")
    for option in ("representative", "verify_data"):
        value = getattr(args, option)
        if value is not None and not Path(value).is_file():
            raise ValueError(f"--{option.replace('_', '-')} {value}: no such file")
    from tfprune.export import export
    from tfprune.export.tflite import load_model

    model = load_model(args.model)
    artifact = export(
        model,
        representative_data=args.representative,
        target=args.target,
        verify_data=args.verify_data,
        quantization=args.quant,
        io=args.io,
        compress=args.compress,
        verify=not args.no_verify,
        preprocessing=args.preprocessing,
        progress=not args.quiet,
    )
    artifact.save(out, overwrite=args.force)
    print(artifact.report)
    print(f"\nwrote {', '.join(sorted(artifact.files()))} to {out}/")
    return 0


def _inspect(args: argparse.Namespace) -> int:
    from tfprune.export import inspect_flatbuffer

    report = inspect_flatbuffer(args.file)
    print(report.to_json() if args.json else report, end="" if args.json else "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
