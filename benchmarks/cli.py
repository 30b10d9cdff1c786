"""``tools/bench``: run benchmark tiers and regenerate BENCHMARKS.md.

    tools/bench --tier standard                    # run what is missing, then rewrite BENCHMARKS.md
    tools/bench --tier standard --refresh          # also re-run rows whose code changed (or is unknown)
    tools/bench --tier standard --stale            # re-run only those rows, none missing
    tools/bench --tier quick --results /tmp/q      # CI: quick tier into a scratch folder, checked
    tools/bench --render                           # only rewrite BENCHMARKS.md and the plots
    tools/bench --check                            # exit 1 on a bad or unclean row, or a stale page

Example:
    >>> main(["--list"])  # doctest: +ELLIPSIS
    mlperf-int8-reference ...
    0
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Sequence

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "tools" / "results"
MARKDOWN = ROOT / "BENCHMARKS.md"


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark command line; returns the exit code."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    args = _parser().parse_args(argv)
    from benchmarks import catalog

    if args.list:
        for method in catalog.methods():
            print(f"{method.name} {method.key_settings()} start={method.start}: {method.description}")
        return 0
    if args.check:
        return _check(Path(args.results), Path(args.markdown))
    if not args.render:
        failure = _run(args)
        if failure:
            print(f"tools/bench: {failure}", file=sys.stderr)
            return 1
    _write(Path(args.results), Path(args.markdown))
    return 0


def _parser() -> argparse.ArgumentParser:
    from benchmarks.tiers import TIERS

    parser = argparse.ArgumentParser(prog="tools/bench", description=__doc__.split("\n\n")[0])
    parser.add_argument("--tier", choices=sorted(TIERS), default="quick")
    parser.add_argument("--methods", help="comma-separated method names (default: all; see --list)")
    parser.add_argument("--seeds", help="comma-separated seeds (default: the tier's)")
    parser.add_argument("--results", default=str(RESULTS), help="folder of results files")
    parser.add_argument("--markdown", default=str(MARKDOWN), help="the page to write")
    parser.add_argument("--refresh", action="store_true",
                        help="also re-run the rows whose code changed since they ran, or was not recorded")
    parser.add_argument("--stale", action="store_true",
                        help="re-run only the recorded rows whose code changed since, or was not recorded; "
                             "add no missing row (with --methods, in the order given)")
    parser.add_argument("--render", action="store_true", help="only regenerate the page and plots")
    parser.add_argument("--check", action="store_true",
                        help="exit 1 on a result out of the schema, from an unclean tree, or a stale page; "
                             "report which rows ran code that changed since")
    parser.add_argument("--list", action="store_true", help="list the methods")
    parser.add_argument("--quiet", action="store_true",
                        help="no progress (a bar on a terminal, one line per row otherwise)")
    return parser


def _run(args: argparse.Namespace) -> str | None:
    from benchmarks import catalog, checks, harness
    from benchmarks.tiers import TIERS

    tier = TIERS[args.tier]
    methods = [method for method in catalog.methods(args.methods.split(",") if args.methods else None)
               if tier.name in method.tiers]
    if args.methods:
        order = args.methods.split(",")
        methods.sort(key=lambda method: order.index(method.name))
    seeds = [int(seed) for seed in args.seeds.split(",")] if args.seeds else None
    path = Path(args.results) / f"{harness.MODEL}_{harness.DATASET}_{tier.name}.jsonl"
    from tfprune.deploy.emulate import EmulatorUnavailable

    try:
        harness.run(methods, tier, path, seeds=seeds, progress=not args.quiet, refresh=args.refresh, stale_only=args.stale)
    except EmulatorUnavailable as missing:
        return str(missing)
    if tier.name == "quick":
        return checks.quick_tier_failure(harness.read_results(path))
    return None


def _all_results(folder: Path) -> list[dict]:
    from benchmarks.harness import read_results

    return [result for path in sorted(folder.glob("*.jsonl")) for result in read_results(path)]


def _plot_paths(results: list[dict], markdown: Path, folder: Path) -> dict[tuple[str, str, str], str]:
    from benchmarks.markdown import table_of

    return {group: os.path.relpath(folder / f"pareto_{'_'.join(group)}.png", markdown.parent)
            for group in {table_of(r) for r in results}}


def _page(folder: Path, markdown: Path, results: list[dict]) -> str:
    from benchmarks.audit import archived
    from benchmarks.markdown import render

    return (render(results, _plot_paths(results, markdown, folder), archived(folder))
            + _compress_section(folder) + _scenario_sections(folder, markdown))


def _compress_section(folder: Path) -> str:
    """The compress family's table (tools/bench-compress writes its rows), marked against this checkout's code."""
    from benchmarks import compress_family

    root = Path(__file__).resolve().parent.parent
    return compress_family.section(compress_family.read_rows(folder), compress_family.code_provenance(root)["fingerprint"])


def _write(folder: Path, markdown: Path) -> None:
    from benchmarks.harness import write_atomically
    from benchmarks.markdown import table_of
    from benchmarks.plots import plot_pareto

    results = _all_results(folder)
    for group, relative in _plot_paths(results, markdown, folder).items():
        runs = [r for r in results if table_of(r) == group]
        plot_pareto(runs, markdown.parent / relative, f"{group[0]} on {group[1]}, {group[2]} tier")
    write_atomically(markdown, _page(folder, markdown, results).encode())
    print(f"wrote {markdown} from {len(results)} results")


def _scenario_sections(folder: Path, markdown: Path) -> str:
    """The tables tools/drift and tools/prune_encoding wrote, after the benchmark tables."""
    sections = []
    encoding = folder / "prune_encoding.md"
    if encoding.exists():
        sections.append("\n## DECODE PRUNE and the lean flatbuffer: bytes, arena, Cortex-M4 time\n\n"
                        "MLPerf's trained ResNet-8 with per-layer magnitude masks, no fine-tuning (the accuracy "
                        "collapse is the masks', the float model shows it too); every file's TFLite Micro outputs "
                        "are bit-identical to the converter's. The benchmark's tfmot rows above carry the "
                        "PRUNE-encoded bytes after fine-tuning.\n\n" + encoding.read_text().strip() + "\n")
    for table in sorted(folder.glob("drift_*.md")):
        tier = table.stem.rsplit("_", 1)[-1]
        text = f"\n## QSAE drift scenario, {tier} tier\n\n{table.read_text().strip()}\n"
        plot = table.with_suffix(".png")
        if plot.exists():
            text += (f"\n![validation accuracy, tau, sparsity and KL per epoch over the drift run]"
                     f"({os.path.relpath(plot, markdown.parent)})\n")
        sections.append(text)
    return "".join(sections)


def _check(folder: Path, markdown: Path) -> int:
    """Audit the results (benchmarks.audit), then compare the page with what they render."""
    from benchmarks.audit import audit

    from benchmarks import compress_family

    outcome = audit(folder)
    for number, row in enumerate(compress_family.read_rows(folder), 1):
        outcome.failures += [f"{compress_family.RESULTS}:{number}: {problem}"
                             for problem in compress_family.row_problems(row)]
    for line in outcome.report:
        print(line)
    for failure in outcome.failures:
        print(f"tools/bench --check: {failure}", file=sys.stderr)
    if outcome.failures:
        print(f"tools/bench --check: {len(outcome.failures)} problem(s) in {folder}", file=sys.stderr)
        return 1
    if not markdown.exists() or markdown.read_text() != _page(folder, markdown, outcome.results):
        print(f"{markdown} is stale: regenerate it with `tools/bench --render` and commit it", file=sys.stderr)
        return 1
    print(f"{markdown} matches {len(outcome.results)} results")
    return 0


if __name__ == "__main__":
    sys.exit(main())
