"""`python -m harness compare A.json B.json`, `python -m harness diff A.json B.json`, `python -m harness relative-robustness A.json B.json`,
`python -m harness merge SHARD.json ... -o OUT.json`, `python -m harness html REPORT.json`,
`python -m harness overlap --eval BENCHMARK:SPLIT --corpus DIR_OR_SHARD ...` and `python -m harness seed-baselines`
(baselines of real models from published figures)."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .files import write_json_atomic
from .reports_cli import ReportError, compare, differences, merge, read_report, relative

# The report commands (compare, relative-robustness, merge, html) import no torch: the commands that need the
# model stack (overlap, seed-baselines) import it when they run.


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m harness", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    compare_cmd = commands.add_parser("compare", help="per-case deltas of report B against report A")
    compare_cmd.add_argument("a", type=Path)
    compare_cmd.add_argument("b", type=Path)
    compare_cmd.add_argument("--alpha", type=float, default=0.01, help="significance level (two-sided)")
    diff_cmd = commands.add_parser("diff", help="whether two runs measured the same: every per-sample bit, accuracy, "
                                                "status and provenance (exit 1 when not), apart from times, memory and "
                                                "the commit")
    diff_cmd.add_argument("a", type=Path)
    diff_cmd.add_argument("b", type=Path)
    relative_cmd = commands.add_parser("relative-robustness", help="per natural shift, shift accuracy of report "
                                       "B's models against report A's (relative robustness) and their effective "
                                       "robustness")
    relative_cmd.add_argument("a", type=Path)
    relative_cmd.add_argument("b", type=Path)
    relative_cmd.add_argument("--models", nargs=2, metavar=("A_ID", "B_ID"),
                              help="compare these two models (default: each model line found in both reports)")
    relative_cmd.add_argument("--alpha", type=float, default=0.01, help="significance level (two-sided)")
    html_cmd = commands.add_parser("html", help="write a report as one self-contained HTML page")
    html_cmd.add_argument("report", type=Path)
    html_cmd.add_argument("-o", "--output", type=Path, help="default: the report's path with .html")
    overlap_cmd = commands.add_parser("overlap", help="near-duplicates of an evaluation split in a corpus, and "
                                                      "accuracy on all versus clean samples")
    overlap_cmd.add_argument("--eval", required=True, metavar="BENCHMARK:SPLIT", help="e.g. synth:test, imagenet:val")
    overlap_cmd.add_argument("--corpus", type=Path, nargs="+", required=True,
                             help="image folders (recursive) and webdataset shards (.tar, .tar.gz, .tgz)")
    overlap_cmd.add_argument("--report", type=Path, help="run report whose per-sample results give accuracy on all "
                                                         "versus clean")
    overlap_cmd.add_argument("--model", action="append", help="only these models of the report (repeatable)")
    overlap_cmd.add_argument("--threshold", type=float, help="similarity of a near-duplicate (default: the "
                                                             "benchmark's, see README)")
    overlap_cmd.add_argument("--samples", type=int, help="without --report: the first N samples of the split")
    overlap_cmd.add_argument("--data-root", type=Path, help="where real datasets live")
    overlap_cmd.add_argument("--cache-dir", type=Path, default=Path(".cache/robustness-gate"))
    overlap_cmd.add_argument("-o", "--output", type=Path, help="write the split and the matches as JSON here")
    merge_cmd = commands.add_parser("merge", help="join the reports of CI shards into one")
    merge_cmd.add_argument("reports", type=Path, nargs="+")
    merge_cmd.add_argument("-o", "--output", type=Path, required=True)
    seed_cmd = commands.add_parser("seed-baselines", help="write baselines of real models from published figures "
                                                          "(never over an existing file)")
    seed_cmd.add_argument("--openclip-results", type=Path, required=True, metavar="CSV",
                          help="OpenCLIP's docs/openclip_results.csv")
    seed_cmd.add_argument("--testbed", type=Path, required=True, metavar="CSV",
                          help="the ImageNet testbed's robustness_top1s.csv")
    seed_cmd.add_argument("--margin", type=float, default=None,
                          help="threshold = published - margin (default: harness.seeding.DEFAULT_MARGIN)")
    seed_cmd.add_argument("--out", type=Path, default=Path("baselines"))
    args = parser.parse_args(argv)
    if args.command == "seed-baselines":
        from .seeding import DEFAULT_MARGIN, openclip_documents, testbed_documents, write_seeded

        margin = DEFAULT_MARGIN if args.margin is None else args.margin
        for source in (args.openclip_results, args.testbed):
            if not source.is_file():
                print(f"error: {source} not found; pass its path (--openclip-results / --testbed)", file=sys.stderr)
                return 2
        written = write_seeded(openclip_documents(args.openclip_results, margin), args.out)
        written += write_seeded(testbed_documents(args.testbed, margin), args.out)
        print(f"wrote {len(written)} seeded baselines to {args.out} (existing files kept)")
        return 0
    try:
        if args.command == "compare":
            print("\n".join(compare(read_report(args.a), read_report(args.b), args.alpha)))
            return 0
        if args.command == "diff":
            lines = differences(read_report(args.a), read_report(args.b))
            print("\n".join(lines[:200] + [f"{len(lines)} difference(s)" if lines else "no difference: the runs "
                                            "measured the same, apart from times, memory and the commit"]))
            return 1 if lines else 0
        if args.command == "relative-robustness":
            print("\n".join(relative(read_report(args.a), read_report(args.b), args.models, args.alpha)))
            return 0
        if args.command == "html":
            from .html_report import write_html  # matplotlib

            output = write_html(read_report(args.report), args.output or args.report.with_suffix(".html"))
            print(f"wrote {output}")
            return 0
        if args.command == "overlap":
            return _overlap(args)
        merged = merge([read_report(path) for path in args.reports])
        write_json_atomic(args.output, merged.to_json())
        run = merged.run
        summary = ", ".join(f"{k} {v}" for k, v in merged.summary.items() if v)
        print(f"wrote {args.output}: {len(merged.cases)} cases from {len(args.reports)} reports ({summary}); "
              f"complete: {run['complete']}; passed: {run['passed']}")
        for label, items in (("missing pytest-split groups", run["missing_groups"]),
                             ("planned cases with no result", run["missing_cases"]),
                             ("failing cases", run["failing_cases"]), ("validity problems", run["validity_problems"])):
            if items:
                print(f"{label} ({len(items)}): " + ", ".join(map(str, items[:20])) + (" ..." if len(items) > 20 else ""))
        return 0 if run["passed"] else 1
    except ReportError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2


def _overlap(args: argparse.Namespace) -> int:
    from .overlap import OverlapError, OverlapRequest, analyse, format_analysis  # torch

    try:
        report = read_report(args.report) if args.report else None
        result = analyse(OverlapRequest(args.eval, args.corpus, report, args.model, args.threshold, args.samples,
                                        args.cache_dir, args.data_root))
    except OverlapError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print("\n".join(format_analysis(result)))
    if args.output:
        write_json_atomic(args.output, result)
        print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
