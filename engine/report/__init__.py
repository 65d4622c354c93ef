"""After the recording: one HTML page of what the engine saw, built from its journal alone.

    python -m engine.report events.jsonl --out report/
    python run_stream.py --source interview.mp4 --journal events.jsonl --report report/

The page shows, per stream and run, a timeline (matplotlib), a summary table, the configuration
and versions the engine ran with, and one card per candidate (fused map, onset/apex/offset, AUs,
emotion, explanation, clip). It never needs the video: fused maps come from the journal's
``<stem>.maps`` folder (written by the publisher beside the journal) or a base64 ``map_png`` field,
clips from the engine's clip folder. Needs the ``report`` extra (matplotlib, jinja2).

Modules: `engine.report.journal` reads journals into sections (no third-party import),
`engine.report.summary` computes the figures, `engine.report.timeline` draws the timeline,
`engine.report.render` writes the folder (``build_report``). Nothing is imported here, so a
missing extra is the command's one-line error, not an import traceback.
"""
