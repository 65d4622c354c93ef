"""The report folder: ``index.html`` (one self-contained page, no script) and the images it shows.

Everything an event says reaches the page through Jinja2 with autoescaping, so an explanation
text holding HTML or script is shown as text. No file name is taken from an event: images and clips
are named by section and card number (``img/s1-c3.png``); a map or clip is read from a folder the
user (or the engine's own configuration) names, and only as ``<candidate_id>.png|.mp4`` with an id
that is a plain file name, resolved inside that folder.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import json
import math
import shutil
from pathlib import Path
from typing import Any

import cv2
import jinja2

from engine.errors import UserError
from engine.paths import ensure_writable_dir
from engine.publish.journal import SAFE_ID, maps_dir
from engine.report.journal import CandidateRecord, Section
from engine.report.summary import Summary, number, summarise
from engine.report.timeline import EMOTION_COLOURS, draw_timeline, emotion_colour

TEMPLATES = Path(__file__).resolve().parent / "templates"
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
#: Config sections whose ``name``-like keys say what ran (shown first; the full config is below them).
KEY_SETTINGS = (
    ("source", ("spec", "fps")),
    ("spotting", ("name", "threshold_k")),
    ("flow", ("name",)),
    ("fusion", ("recipe",)),
    ("explain", ("name", "model", "adapter", "endpoint")),
    ("face", ("model",)),
)


def _inside(folder: Path, candidate_id: str, suffix: str) -> Path | None:
    """``folder/<candidate_id><suffix>`` if the id is a plain name and the file resolves inside ``folder``."""
    if not SAFE_ID.fullmatch(candidate_id):
        return None
    root = folder.resolve()
    path = (root / f"{candidate_id}{suffix}").resolve()
    return path if path.parent == root and path.is_file() else None


def _map_bytes(rec: CandidateRecord, folder: Path) -> bytes | None:
    """The candidate's fused map: base64 ``map_png`` in the event, else ``folder/<id>.png``; PNG only."""
    data: bytes | None = None
    embedded = rec.event.get("map_png")
    if isinstance(embedded, str):
        try:
            data = base64.b64decode(embedded, validate=True)
        except (binascii.Error, ValueError):
            data = None
    if data is None and (path := _inside(folder, rec.candidate_id, ".png")) is not None:
        data = path.read_bytes()
    return data if data is not None and data.startswith(PNG_SIGNATURE) else None


def _clip_still(clip: Path, target: Path, offset_s: float) -> bool:
    """Write the frame ``offset_s`` into ``clip`` as a PNG; False when OpenCV cannot read it."""
    cap = cv2.VideoCapture(str(clip))
    try:
        fps = cap.get(cv2.CAP_PROP_FPS) or 30.0
        count = int(cap.get(cv2.CAP_PROP_FRAME_COUNT))
        index = min(max(round(offset_s * fps), 0), max(count - 1, 0))
        cap.set(cv2.CAP_PROP_POS_FRAMES, index)
        ok, frame = cap.read()
        return bool(ok) and cv2.imwrite(str(target), frame)
    finally:
        cap.release()


def _clips_folder(sec: Section, clips_dir: Path | None) -> Path | None:
    """The folder clips are taken from: the one given, else the engine's configured one (if clips were on)."""
    if clips_dir is not None:
        return clips_dir
    clips = ((sec.run_info or {}).get("config") or {}).get("clips") or {}
    if clips.get("enabled") and isinstance(clips.get("dir"), str) and clips["dir"]:
        return Path(clips["dir"])
    return None


def _card(rec: CandidateRecord, sec: Section, key: str, out: Path, maps: Path, clips: Path | None,
          pre_s: float) -> dict[str, Any]:
    e, o = rec.event, rec.outcome or {}
    times = {p: {"t": rec.t(p), "frame": e[p].get("frame") if isinstance(e.get(p), dict) else None}
             for p in ("onset", "apex", "offset")}
    on, off = rec.t("onset"), rec.t("offset")
    card: dict[str, Any] = {
        "number": rec.number,
        "candidate_id": rec.candidate_id,
        "kind": str(e.get("kind", "?")),
        "score": number(e.get("score")),
        "regions": [str(r) for r in e.get("regions") or []],
        "times": times,
        "duration_ms": None if math.isnan(off - on) else 1000 * (off - on),
        "outcome": o.get("type", "open"),
        "map": None, "clip": None, "clip_still": None, "clip_missing": None,
    }
    if o.get("type") == "explanation":
        aus = []
        for a in o.get("aus") or []:
            if isinstance(a, dict) and number(a.get("au")) is not None:
                conf = number(a.get("confidence"))
                aus.append({"au": int(a["au"]), "name": str(a.get("name", "")),
                            "side": str(a.get("side", "")), "confidence": conf,
                            "pct": round(100 * min(max(conf or 0.0, 0.0), 1.0), 1)})
        card.update(emotion=str(o.get("emotion", "?")), emotion_detail=str(o.get("emotion_detail") or ""),
                    colour=emotion_colour(o.get("emotion")), aus=aus, text=str(o.get("text", "")),
                    explainer=str(o.get("explainer", "")), latency_ms=number(o.get("latency_ms")))
    elif o.get("type") == "dropped":
        card.update(reason=str(o.get("reason", "?")), detail=str(o.get("detail", "")))
    png = _map_bytes(rec, maps)
    if png is not None:
        (out / "img" / f"{key}.png").write_bytes(png)
        card["map"] = f"img/{key}.png"
    if clips is not None and (clip := _inside(clips, rec.candidate_id, ".mp4")) is not None:
        shutil.copyfile(clip, out / "clips" / f"{key}.mp4")
        card["clip"] = f"clips/{key}.mp4"
        still_at = pre_s + (rec.t("apex") - on if not math.isnan(rec.t("apex") - on) else 0.0)
        if _clip_still(clip, out / "clips" / f"{key}.png", still_at):
            card["clip_still"] = f"clips/{key}.png"
    elif o.get("clip"):
        card["clip_missing"] = str(o["clip"])
    return card


def _settings(run_info: dict[str, Any] | None) -> list[tuple[str, str]]:
    config = (run_info or {}).get("config") or {}
    rows = []
    for section, keys in KEY_SETTINGS:
        values = config.get(section)
        if not isinstance(values, dict):
            continue
        shown = [f"{k} = {values[k]}" for k in keys if values.get(k) not in (None, "")]
        if shown:
            rows.append((section, ", ".join(shown)))
    return rows


def _section_view(i: int, sec: Section, summary: Summary, out: Path, maps: Path | None,
                  clips_dir: Path | None) -> dict[str, Any]:
    end = (sec.since or 0.0) + summary.duration_s if summary.duration_s else None
    timeline = f"img/timeline-s{i}.png"
    draw_timeline(sec, out / timeline, end)
    clips = _clips_folder(sec, clips_dir)
    pre_s = number((((sec.run_info or {}).get("config") or {}).get("clips") or {}).get("pre_s")) or 0.5
    folder = maps if maps is not None else maps_dir(sec.journal)
    cards = [_card(r, sec, f"s{i}-c{r.number}", out, folder, clips, pre_s) for r in sec.candidates]
    explainers = sorted({c["explainer"] for c in cards if c.get("explainer")})
    return {
        "id": f"s{i}",
        "stream": sec.stream,
        "journal": str(sec.journal),
        "run": sec.run,
        "runs": sec.runs,
        "since": sec.since,
        "until": sec.until,
        "final": sec.final,
        "notes": sec.notes,
        "timeline": timeline,
        "summary": summary,
        "cards": cards,
        "explainers": explainers,
        "settings": _settings(sec.run_info),
        "versions": sorted(((sec.run_info or {}).get("versions") or {}).items()),
        "config_json": json.dumps((sec.run_info or {}).get("config"), indent=2, sort_keys=True)
        if sec.run_info else None,
        "maps_folder": str(folder),
        "clips_folder": str(clips) if clips is not None else None,
    }


def _environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["num"] = lambda v, digits=1: "–" if v is None else f"{v:,.{digits}f}"
    return env


def build_report(
    sections: list[Section],
    out: str | Path,
    *,
    maps: str | Path | None = None,
    clips: str | Path | None = None,
    title: str = "mellm-stream report",
) -> Path:
    """Write the report of ``sections`` into the folder ``out``; returns the path of ``index.html``.

    ``maps``: folder of ``<candidate_id>.png`` fused maps (default: each journal's ``<stem>.maps``);
    ``clips``: folder of ``<candidate_id>.mp4`` event clips (default: the engine's configured one).
    """
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise UserError(f"--out {out} is a file; give a folder for the report")
    for folder in (out, out / "img", out / "clips"):
        if (reason := ensure_writable_dir(folder)) is not None:
            raise UserError(f"cannot write the report into {folder}: {reason}; choose another --out")
    maps_path = Path(maps) if maps is not None else None
    clips_path = Path(clips) if clips is not None else None
    views = [_section_view(i, s, summarise(s), out, maps_path, clips_path) for i, s in enumerate(sections, 1)]
    html = _environment().get_template("report.html.j2").render(
        title=title,
        generated=dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        sections=views,
        emotion_colours=EMOTION_COLOURS,
    )
    index = out / "index.html"
    tmp = out / "index.html.tmp"
    tmp.write_text(html, encoding="utf-8")
    tmp.replace(index)
    return index
