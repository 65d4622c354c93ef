"""What every command line does with a user mistake or Ctrl-C, in one place.

>>> @cli_main
... def main(argv=None) -> int:
...     raise UserError("no such file x.mp4; give a video file")
>>> main()  # prints "error: no such file x.mp4; give a video file" on stderr
2
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable

from engine.errors import UserError


def cli_main(fn: Callable[..., int]) -> Callable[..., int]:
    """Wrap a ``main(argv) -> int``: a `UserError` is one line on stderr and exit 2, Ctrl-C exit 130."""

    @functools.wraps(fn)
    def wrapper(*args: object, **kwargs: object) -> int:
        try:
            return fn(*args, **kwargs)
        except UserError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        except KeyboardInterrupt:
            print("interrupted", file=sys.stderr)
            return 130

    return wrapper
