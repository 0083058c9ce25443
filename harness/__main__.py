"""`python -m harness compare A.json B.json` and `python -m harness merge SHARD.json ... -o OUT.json`."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .baselines import write_atomic
from .reports_cli import ReportError, compare, merge, read_report


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
    args = parser.parse_args(argv)
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
