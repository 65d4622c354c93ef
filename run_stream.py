#!/usr/bin/env python3
"""Run the mellm-stream engine on a source and publish events over ZeroMQ.

    python run_stream.py --source demo
    python run_stream.py --source 0                      # webcam index
    python run_stream.py --source rtsp://camera/stream
    python run_stream.py --source interview.mp4
    python run_stream.py --source CASME2/sub01/EP02_01f --fps 200
    python run_stream.py --source interview.mp4 --report report/     # + report/events.jsonl

Every run ends with a one-paragraph summary on stderr (frames, faces found, candidates micro/macro,
explained, dropped by reason, time).

Exit codes: 0 when the source ended or the run was stopped (SIGINT/SIGTERM), 2 on a user mistake
(one line on stderr), 1 on an internal error, 3 when a run that was not stopped explained nothing:
frames were read but no face was found in any of them, or there were candidates and not one was
explained.
"""

from __future__ import annotations

import argparse
import logging
import math
import signal
import sys
import time
from typing import Any

from engine.errors import UserError

log = logging.getLogger("mellm")

# flag → dotted config key; every flag overrides its key of the config file
FLAG_KEYS = {
    "source": "source.spec",
    "pub": "publish.endpoint",
    "journal": "publish.journal",
    "explainer": "explain.name",
    "face_model": "face.model",
    "fps": "source.fps",
    "max_frames": "source.max_frames",
    "realtime": "source.realtime",
    "demo_realtime": "demo.realtime",
    "stream": "source.stream",
    "curve_secret_key": "publish.curve_secret_key",
    "curve_allow_dir": "publish.curve_allow_dir",
}
# flags whose key lies in the chosen explainer's own section: --model → explain.<explainer>.model
EXPLAINER_FLAGS = ("model", "adapter", "endpoint")


class _Parser(argparse.ArgumentParser):
    """argparse that reports a usage mistake as one line and exit 2."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


def _finite_float(text: str) -> float:
    """A float flag value; nan and inf are refused here (no stage can run at an infinite rate)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid number: {text!r}") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"expected a finite number, got {text!r}")
    return value


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="run_stream.py", description=__doc__.split("\n\n")[0])
    p.add_argument("--source", help="camera index, rtsp/http URL, video file, frame folder, or 'demo'")
    p.add_argument("--config", help="TOML config file or bundled name (default, highspeed-200fps, rtsp-edge)")
    p.add_argument("--pub", help="ZeroMQ PUB endpoint to bind (default tcp://127.0.0.1:5556)")
    p.add_argument("--journal", help="append every event as a JSON line to this file")
    p.add_argument(
        "--report",
        metavar="DIR",
        help="at the end, the HTML report into DIR (from --journal, else DIR/events.jsonl)",
    )
    p.add_argument("--explainer", help="rules (default), vlm, llm, openai")
    p.add_argument("--model", help="local model folder (vlm, llm) or model name (openai)")
    p.add_argument("--adapter", help="LoRA adapter folder for the vlm explainer")
    p.add_argument("--endpoint", help="base URL of an OpenAI-compatible server (openai explainer)")
    p.add_argument("--face-model", help="MediaPipe face_landmarker.task file")
    p.add_argument("--fps", type=_finite_float, help="frame rate (required for frame folders)")
    p.add_argument("--max-frames", type=int, help="stop after N frames")
    p.add_argument("--realtime", action="store_true", default=None, help="pace files at their frame rate")
    p.add_argument(
        "--fast",
        dest="demo_realtime",
        action="store_false",
        default=None,
        help="run the demo flat out instead of at its frame rate (demo.realtime=false)",
    )
    p.add_argument("--stream", help="stream name used in topics (default: derived from the source)")
    p.add_argument("--curve-secret-key", help="CURVE: the server's NAME.key_secret (python -m engine.keys)")
    p.add_argument("--curve-allow-dir", help="CURVE: folder of the allowed clients' public NAME.key files")
    p.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override any config key, e.g. --set spotting.bump.threshold_k=5 (repeatable)",
    )
    p.add_argument("--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    return p


def overrides_from_args(args: argparse.Namespace) -> dict[str, Any]:
    """The dotted-key overrides given on the command line (flags first, then --set).

    ``--model``, ``--adapter`` and ``--endpoint`` set the option of the explainer that will run
    (``--explainer``, else ``--set explain.name``, else the config file's, else ``rules``).
    """
    from engine.config import explainer_option_key, parse_override, read_toml
    from engine.explain.config import ExplainConfig

    out: dict[str, Any] = {}
    for flag, key in FLAG_KEYS.items():
        value = getattr(args, flag)
        if value is not None:
            out[key] = value
    sets = dict(parse_override(item) for item in args.set)
    given = {flag: getattr(args, flag) for flag in EXPLAINER_FLAGS if getattr(args, flag) is not None}
    if given:
        explainer = sets.get("explain.name", out.get("explain.name"))
        if explainer is None:  # the config file's, else the default
            section = read_toml(args.config).get("explain", {}) if args.config else {}
            explainer = section.get("name") if isinstance(section, dict) else None
            explainer = explainer or ExplainConfig().name
        for flag, value in given.items():
            out[explainer_option_key(str(explainer), flag, f"--{flag}")] = value
    out.update(sets)
    return out


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=args.log_level, stream=sys.stderr, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    closers: list[Any] = []
    try:
        from engine.config import load_config
        from engine.pipeline import build_pipeline

        cfg = load_config(args.config, overrides_from_args(args))
        _check_explainer_server(cfg)
        if args.report:
            cfg = _prepare_report(args.report, cfg)
        pipeline, closers = build_pipeline(cfg)
    except UserError as exc:
        print(f"run_stream.py: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:  # Ctrl-C while models load, before the stop handler is in place
        print("run_stream.py: interrupted while starting", file=sys.stderr)
        return 130

    truth = getattr(getattr(pipeline.frames, "source", None), "truth", None)  # the demo's injected events
    if truth is not None:
        pipeline.spans = []
    stopped: list[str] = []

    def on_signal(signum: int, _frame: object) -> None:
        log.info("received %s: stopping", signal.Signals(signum).name)
        stopped.append(signal.Signals(signum).name)
        pipeline.request_stop()

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    code = 0
    try:
        pipeline.run()
    except UserError as exc:
        print(f"run_stream.py: error: {exc}", file=sys.stderr)
        code = 2
    except Exception:
        log.exception("internal error")
        code = 1
    finally:
        from engine.pipeline import close_all

        if not close_all(closers) and code == 0:
            code = 1
    text, nothing = run_summary(pipeline)
    print(text, file=sys.stderr)
    if truth is not None:
        print(demo_report(truth, pipeline.spans or [], pipeline.counters.frames), flush=True)
    if nothing and code == 0 and not stopped:  # a run the user stopped is not judged
        code = NOTHING_EXPLAINED
    if args.report:  # also after a failure: the journal holds what happened until then
        code = max(code, _write_report(args.report, cfg))
    return code


NOTHING_EXPLAINED = 3  # exit code: no face in any frame, or candidates and not one explained


def run_summary(pipeline: Any) -> tuple[str, bool]:
    """The run's one-paragraph summary, and whether nothing could be explained (see the exit codes)."""
    loop, worker = pipeline.counters, pipeline.worker.stats()
    explained = int(worker.get("explained", 0))
    dropped = {k: v for k, v in worker.get("dropped", {}).items() if v}
    drops = ", ".join(f"{n} {reason}" for reason, n in sorted(dropped.items())) or "none"
    kinds = pipeline.kinds
    text = (
        f"run_stream.py: summary: {loop.frames} frames, a face found in {loop.face_frames}; "
        f"{loop.candidates} candidates ({kinds.get('micro', 0)} micro, {kinds.get('macro', 0)} macro), "
        f"{explained} explained, {int(worker.get('errors', 0))} explainer errors, dropped: {drops}; "
        f"{time.monotonic() - pipeline.started:.1f} s."
    )
    no_face = loop.frames > 0 and loop.face_frames == 0
    unexplained = loop.candidates > 0 and explained == 0
    if no_face:
        text += " No face was found in any frame: check that the source shows a face (frontal, lit)."
    elif unexplained:
        text += " Not one candidate was explained: see the errors above (explainer, drain_s)."
    return text, no_face or unexplained


def demo_report(truth: Any, spans: list[tuple[int, int, str]], frames: int) -> str:
    """What the demo found against its own injected events (`TruthEvent` list), by the MEGC rule
    (`engine.intervals`: IoU >= 0.5); events past the last frame read (a stopped run) are left out."""
    from engine.intervals import IOU_THRESHOLD, match_intervals

    shown = [ev for ev in truth if ev.offset.frame < frames]
    pairs = match_intervals(spans, [(ev.onset.frame, ev.offset.frame, ev.kind) for ev in shown])
    found = {gi for _, gi in pairs}
    missed = [f"{ev.onset.t:.2f} s" for k, ev in enumerate(shown) if k not in found]
    false_alarms = len(spans) - len(pairs)
    return (
        f"demo: found {len(found)} of {len(shown)} injected events (IoU >= {IOU_THRESHOLD:g} with a "
        f"candidate); missed {len(missed)}{' (onsets at ' + ', '.join(missed) + ')' if missed else ''}; "
        f"{false_alarms} false alarm{'' if false_alarms == 1 else 's'} (candidates matching no event)"
    )


def _check_explainer_server(cfg: Any) -> None:
    """The openai explainer's server must answer before the run starts (else every candidate fails)."""
    if cfg.explain.name != "openai" or not cfg.explain.openai.endpoint:
        return
    import urllib.error
    import urllib.request

    from engine.explain.openai_client import base_url

    url = base_url(cfg.explain.openai.endpoint) + "/v1/models"
    wait_s = min(5.0, cfg.explain.openai.timeout_s)
    try:
        with urllib.request.urlopen(url, timeout=wait_s):
            pass
    except urllib.error.HTTPError:
        return  # the server is there (it may want a key: the explainer's own error says so)
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        if isinstance(reason, TimeoutError):  # a server that is busy, or a network that drops packets
            log.warning("the openai server at %s did not answer within %g s; starting anyway", url, wait_s)
            return
        raise UserError(
            f"the openai server at {cfg.explain.openai.endpoint} does not answer ({reason}); start it "
            "or pass the right --endpoint"
        ) from None


def _prepare_report(folder: str, cfg: Any) -> Any:
    """Fail before the run, not after it, when ``--report`` cannot be written; without a journal,
    journal into ``folder/events.jsonl`` (the report is built from the journal alone)."""
    from pathlib import Path

    from engine.paths import ensure_writable_dir

    try:
        import jinja2  # noqa: F401
        import matplotlib  # noqa: F401
    except ImportError as exc:
        raise UserError(f"--report needs {exc.name}: pip install 'mellm-stream[report]'") from None
    if (reason := ensure_writable_dir(Path(folder))) is not None:
        raise UserError(f"cannot write the report into {folder}: {reason}; choose another --report")
    if cfg.publish.journal:
        return cfg
    journal = str(Path(folder) / "events.jsonl")
    log.info("journal for the report: %s", journal)
    return cfg.model_copy(update={"publish": cfg.publish.model_copy(update={"journal": journal})})


def _write_report(folder: str, cfg: Any) -> int:
    """The report of this run (the journal's last run); 0 when written, else 1 or 2 with the reason logged."""
    from engine.report.journal import load_sections
    from engine.report.render import build_report

    try:
        sections = load_sections([cfg.publish.journal], last_run_only=True)
        clips = cfg.clips.dir if cfg.clips.enabled else None
        index = build_report(sections, folder, clips=clips)
    except UserError as exc:
        print(f"run_stream.py: error: report not written: {exc}", file=sys.stderr)
        return 2
    except Exception:
        log.exception("report not written")
        return 1
    log.info("report written: %s", index)
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:  # Ctrl-C during the first imports
        sys.exit(130)
