"""`python -m harness compare A.json B.json`, `python -m harness merge SHARD.json ... -o OUT.json` and
`python -m harness seed-baselines` (baselines of real models from published figures)."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .baselines import write_atomic
from .reports_cli import ReportError, compare, merge, read_report
from .seeding import DEFAULT_MARGIN, openclip_documents, testbed_documents, write_seeded


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m harness", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    compare_cmd = commands.add_parser("compare", help="per-case deltas of report B against report A")
    compare_cmd.add_argument("a", type=Path)
    compare_cmd.add_argument("b", type=Path)
    compare_cmd.add_argument("--alpha", type=float, default=0.01, help="significance level (two-sided)")
    merge_cmd = commands.add_parser("merge", help="join the reports of CI shards into one")
    merge_cmd.add_argument("reports", type=Path, nargs="+")
    merge_cmd.add_argument("-o", "--output", type=Path, required=True)
    reference = Path(__file__).resolve().parent.parent.parent / "shared" / "reference"
    seed_cmd = commands.add_parser("seed-baselines", help="write baselines of real models from published figures "
                                                          "(never over an existing file)")
    seed_cmd.add_argument("--openclip-results", type=Path, default=reference / "openclip_results.csv")
    seed_cmd.add_argument("--testbed", type=Path, default=reference / "imagenet_testbed_top1s.csv")
    seed_cmd.add_argument("--margin", type=float, default=DEFAULT_MARGIN, help="threshold = published - margin")
    seed_cmd.add_argument("--out", type=Path, default=Path("baselines"))
    args = parser.parse_args(argv)
    if args.command == "seed-baselines":
        for source in (args.openclip_results, args.testbed):
            if not source.is_file():
                print(f"error: {source} not found; pass its path (--openclip-results / --testbed)", file=sys.stderr)
                return 2
        written = write_seeded(openclip_documents(args.openclip_results, args.margin), args.out)
        written += write_seeded(testbed_documents(args.testbed, args.margin), args.out)
        print(f"wrote {len(written)} seeded baselines to {args.out} (existing files kept)")
        return 0
    try:
        if args.command == "compare":
            print("\n".join(compare(read_report(args.a), read_report(args.b), args.alpha)))
            return 0
        merged = merge([read_report(path) for path in args.reports])
        write_atomic(args.output, merged)
        summary = ", ".join(f"{k} {v}" for k, v in merged["summary"].items() if v)
        print(f"wrote {args.output}: {len(merged['cases'])} cases from {len(args.reports)} reports ({summary}); "
              f"complete: {merged['run']['complete']}")
        return 0 if merged["run"]["complete"] else 1
    except ReportError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
