"""Offline spotting tools: the injected-event benchmark's injection, the MEGC evaluation, the signal
plots and the annotation sheets. They import the runtime (`engine`, `spotting`) downward; the runtime
never imports them.

    python -m evaluation.megc --dataset casme2_long --sheet SHEET --root DIR
    python -m evaluation.plot --video FILE --out plot.png
"""
