"""Micro-expression understanding evaluation: any explainer over a dataset split.

Each dataset line is turned back into the `Evidence` the explainer would see at run time (fused
map PNG, region statistics, faces and flow from ``evidence/<id>.npz``;
`training.build_dataset.load_evidence`), explained in batches by ``engine.explain.create(name,
...)`` — ``rules`` included, no model needed — and scored against the sheet labels
(`training.metrics`): AU F1 per AU and mean, 3-class UF1 / UAR / accuracy (MEGC composite), per
dataset and over all folds (pooled, the MEGC way, and as the mean of per-fold scores).

AUs are scored when FACS names them (`engine.facs.AU_NAMES`); head and eye movement codes
(51-66) and unnamed descriptors are not something an explainer can report.

    python -m training.evaluate --data data/casme2 --explainer rules
    python -m training.evaluate --data data/casme2 --loso --explainer vlm --model MODEL \\
        --adapter 'runs/{fold}/adapter' --out results.json
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from engine.errors import UserError
from engine.facs import AU_NAMES
from training.build_dataset import load_evidence, read_dataset
from training.metrics import au_scores, emotion_scores

log = logging.getLogger(__name__)


def _scores(rows: Sequence[dict[str, Any]]) -> dict[str, Any]:
    aus = au_scores([r["truth_aus"] for r in rows], [r["pred_aus"] for r in rows], aus=AU_NAMES)
    emo = emotion_scores([r["truth_megc3"] for r in rows], [r["pred_emotion"] for r in rows])
    per_au = {a: s for a, s in aus.to_json()["per_au"].items() if s["support"] or s["fp"]}
    return {
        "n": len(rows),
        "au_mean_f1": aus.mean_f1,
        "au": per_au,
        "uf1": emo.uf1,
        "uar": emo.uar,
        "accuracy": emo.accuracy,
        "n_3class": emo.n,
        "per_class": emo.per_class,
        "confusion": emo.confusion,
    }


def evaluate(
    data: str | Path,
    splits: Sequence[str | Path | None],
    explainer: str,
    params: dict[str, Any],
    *,
    batch_size: int = 4,
    limit: int | None = None,
) -> dict[str, Any]:
    """Results of ``explainer`` on the test part of each split (None = the whole dataset).

    ``params`` go to ``engine.explain.create``; an ``adapter`` containing ``{fold}`` is formatted
    with each fold's name (one adapter per leave-one-subject-out fold).
    """
    import engine.explain

    folder = Path(data)
    rows: list[dict[str, Any]] = []
    folds: dict[str, Any] = {}
    t0 = time.perf_counter()
    name = explainer
    for split in splits:
        fold = Path(split).stem if split else "all"
        items = read_dataset(folder, split, "test")[: limit if limit else None]
        if not items:
            log.warning("fold %s has no test lines", fold)
            continue
        p = dict(params)
        if isinstance(p.get("adapter"), str) and "{fold}" in p["adapter"]:
            p["adapter"] = p["adapter"].format(fold=fold)
        ex = engine.explain.create(explainer, **p)
        name = ex.name
        try:
            ex.warmup()
            fold_rows = []
            for i in range(0, len(items), batch_size):
                chunk = items[i : i + batch_size]
                out = ex.explain_batch([load_evidence(it, folder) for it in chunk])
                for it, e in zip(chunk, out, strict=True):
                    rec = it["record"]
                    fold_rows.append(
                        {
                            "id": it["id"],
                            "fold": fold,
                            "dataset": rec["dataset"],
                            "truth_aus": sorted({int(a[0]) for a in rec["aus"]}),
                            "truth_megc3": rec["megc3"],
                            "truth_emotion": rec["emotion"],
                            "pred_aus": sorted({a.au for a in e.aus}),
                            "pred_emotion": e.emotion,
                            "pred_detail": e.emotion_detail,
                            "text": e.text,
                        }
                    )
        finally:
            ex.close()
        folds[fold] = _scores(fold_rows)
        rows += fold_rows
    if not rows:
        raise UserError(f"nothing to evaluate in {folder}: the splits have no test lines")
    by_dataset: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for r in rows:
        by_dataset[r["dataset"]].append(r)
    with_3class = [f for f in folds.values() if f["n_3class"]]

    def fold_mean(key: str, fs: Sequence[dict[str, Any]]) -> float | None:
        return sum(f[key] for f in fs) / len(fs) if fs else None

    return {
        "explainer": name,
        "data": str(folder),
        "folds": folds,
        "datasets": {d: _scores(rs) for d, rs in sorted(by_dataset.items())},
        "pooled": _scores(rows),
        "fold_mean": {
            "au_mean_f1": fold_mean("au_mean_f1", list(folds.values())),
            "uf1": fold_mean("uf1", with_3class),
            "uar": fold_mean("uar", with_3class),
            "accuracy": fold_mean("accuracy", with_3class),
            "folds": len(folds),
        },
        "predictions": rows,
        "seconds": round(time.perf_counter() - t0, 2),
    }


def format_table(result: dict[str, Any]) -> str:
    """The readable summary: one line per dataset, pooled and fold-mean lines, then AU F1 per AU."""

    def line(label: str, s: dict[str, Any]) -> str:
        return (
            f"{label:<14}{s['n']:>6}{s['n_3class']:>8}{s['au_mean_f1']:>10.4f}"
            f"{s['uf1']:>8.4f}{s['uar']:>8.4f}{s['accuracy']:>8.4f}"
        )

    head = f"{'':<14}{'n':>6}{'n 3cls':>8}{'AU F1':>10}{'UF1':>8}{'UAR':>8}{'acc':>8}"
    out = [f"explainer {result['explainer']} on {result['data']} ({len(result['folds'])} folds)", head]
    out += [line(d, s) for d, s in result["datasets"].items()]
    out.append(line("pooled", result["pooled"]))
    fm = result["fold_mean"]

    def num(v: float | None) -> str:
        return "     n/a" if v is None else f"{v:8.4f}"

    out.append(
        f"{'LOSO mean':<14}{fm['folds']:>6}{'':>8}{num(fm['au_mean_f1']):>10}{num(fm['uf1'])}"
        f"{num(fm['uar'])}{num(fm['accuracy'])}"
    )
    out.append("")
    out.append(f"{'AU':<6}{'name':<24}{'support':>8}{'tp':>5}{'fp':>5}{'fn':>5}{'F1':>8}")
    for au, s in result["pooled"]["au"].items():
        out.append(
            f"AU{au:<4}{AU_NAMES.get(int(au), ''):<24}{s['support']:>8}{s['tp']:>5}{s['fp']:>5}{s['fn']:>5}"
            f"{s['f1']:>8.4f}"
        )
    return "\n".join(out)


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m training.evaluate", description=__doc__.split("\n")[0])
    ap.add_argument("--data", required=True, help="dataset folder (python -m training.build_dataset)")
    ap.add_argument("--split", action="append", default=[], help="fold file; repeatable (default: all lines)")
    ap.add_argument("--loso", action="store_true", help="every fold in DATA/splits (leave-one-subject-out)")
    ap.add_argument("--explainer", default="rules", help="explainer name: rules, vlm, llm, openai")
    ap.add_argument("--model", default="", help="model folder (vlm, llm) or model name (openai)")
    ap.add_argument(
        "--adapter", default="", help="LoRA adapter folder; '{fold}' is replaced by the fold name"
    )
    ap.add_argument("--endpoint", default="", help="OpenAI-compatible base URL (openai)")
    ap.add_argument("--max-new-tokens", type=int, default=None)
    ap.add_argument("--batch-size", type=int, default=4)
    ap.add_argument("--limit", type=int, default=None, help="only the first N test lines of each fold")
    ap.add_argument("--out", default=None, help="write the results (with every prediction) as JSON here")
    a = ap.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    params: dict[str, Any] = {
        k: v for k, v in (("model", a.model), ("adapter", a.adapter), ("endpoint", a.endpoint)) if v
    }
    if a.max_new_tokens:
        params["max_new_tokens"] = a.max_new_tokens
    from engine.explain.openai_client import OpenAIRequestError

    try:
        counts = {"--batch-size": a.batch_size, "--limit": a.limit, "--max-new-tokens": a.max_new_tokens}
        for flag, value in counts.items():
            if value is not None and value < 1:
                raise UserError(f"{flag} must be at least 1, got {value}")
        out = Path(a.out) if a.out else None
        if out is not None:
            if out.is_dir():
                raise UserError(f"--out {out} is a folder; give a JSON file such as {out / 'results.json'}")
            try:
                out.parent.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise UserError(f"cannot create the folder of --out {out}: {exc.strerror or exc}") from None
        splits: list[str | Path | None] = list(a.split)
        if a.loso:
            splits += sorted((Path(a.data) / "splits").glob("*.json"))
            if not splits:
                raise UserError(f"--loso: no fold files in {Path(a.data) / 'splits'}")
        result = evaluate(
            a.data, splits or [None], a.explainer, params, batch_size=a.batch_size, limit=a.limit
        )
    except (UserError, OpenAIRequestError) as exc:
        unreachable = isinstance(exc, OpenAIRequestError)
        hint = "; check --endpoint, --model and that the server runs" if unreachable else ""
        print(f"error: {exc}{hint}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    print(format_table(result))
    if out is not None:
        try:
            out.write_text(json.dumps(result, indent=1, ensure_ascii=False))
        except OSError as exc:
            print(f"error: cannot write --out {out}: {exc.strerror or exc}", file=sys.stderr)
            return 2
        print(f"results written to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
