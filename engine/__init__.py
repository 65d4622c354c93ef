"""mellm-stream: real-time micro-expression spotting and explanation (MELLM, arXiv 2505.07007)."""

__version__ = "0.1.0"
