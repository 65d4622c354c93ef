"""``python -m engine.report JOURNAL [JOURNAL ...] --out DIR``: the report page of one or more journals.

Exit 0 with the path of ``index.html`` on stdout; 2 with one line on stderr for a user mistake
(missing, empty or non-journal file, bad time, unwritable folder).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from engine.cli import cli_main
from engine.errors import UserError


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="python -m engine.report", description="One HTML page of a run, from its journal(s).")
    p.add_argument("journals", nargs="+", type=Path, metavar="JOURNAL",
                   help="journal written by run_stream.py --journal (several: one section each)")
    p.add_argument("--out", type=Path, required=True, help="folder of the report (index.html + images)")
    p.add_argument("--since", help="start of the selection, stream seconds or M:SS")
    p.add_argument("--until", help="end of the selection, stream seconds or M:SS")
    p.add_argument("--stream", help="only this stream")
    p.add_argument("--maps", type=Path,
                   help="folder of <candidate_id>.png maps (default: <stem>.maps beside the journal)")
    p.add_argument("--clips", type=Path,
                   help="folder of <candidate_id>.mp4 clips (default: the engine's clips.dir)")
    p.add_argument("--title", default="mellm-stream report", help="page title")
    return p


def _dependencies() -> None:
    try:
        import jinja2  # noqa: F401
        import matplotlib  # noqa: F401
    except ImportError as exc:
        raise UserError(f"the report needs {exc.name}: pip install 'mellm-stream[report]'") from None


@cli_main
def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    _dependencies()
    from engine.report.journal import load_sections, parse_time
    from engine.report.render import build_report

    since = parse_time(args.since) if args.since is not None else None
    until = parse_time(args.until) if args.until is not None else None
    sections = load_sections(args.journals, since=since, until=until, stream=args.stream)
    index = build_report(sections, args.out, maps=args.maps, clips=args.clips, title=args.title)
    print(index)
    return 0


if __name__ == "__main__":
    sys.exit(main())
