"""Progress of long loops on a terminal *and* headless (papermill, CI logs, ``nohup``).

tqdm draws a bar on a terminal but hides itself when stderr is not one, and a notebook rendered by
papermill never has one: a multi-hour training cell would show nothing. :class:`ProgressLog` keeps
tqdm on a terminal and, off one, writes a log line every ``every_s`` seconds (environment variable
``REPROLIB_PROGRESS_EVERY``, default 60; ``0`` logs every update) and one at the end, each with
the position, the rate and an ETA. It draws no random numbers, so it never changes a run.

Example::

    with ProgressLog(len(loader), "X-ReID CPC memories", unit="batch") as bar:
        for batch in loader:
            ...
            bar.update(1, loss=0.5)
"""
from __future__ import annotations

import logging
import os
import sys
import time
from typing import Any, Optional

__all__ = ["ProgressLog", "format_duration", "progress_every", "on_terminal"]

ENV_EVERY = "REPROLIB_PROGRESS_EVERY"


def progress_every(default: float = 60.0) -> float:
    """Seconds between headless progress lines (``$REPROLIB_PROGRESS_EVERY``, else ``default``)."""
    try:
        return max(0.0, float(os.environ.get(ENV_EVERY, default)))
    except ValueError:
        return default


def on_terminal() -> bool:
    """Whether stderr is an interactive terminal (where tqdm draws its bar)."""
    try:
        return sys.stderr.isatty()
    except (AttributeError, ValueError):
        return False


def format_duration(seconds: float) -> str:
    """``3h05m``, ``4m12s`` or ``9s``."""
    s = int(round(max(0.0, seconds)))
    h, rem = divmod(s, 3600)
    m, sec = divmod(rem, 60)
    return f"{h}h{m:02d}m" if h else (f"{m}m{sec:02d}s" if m else f"{sec}s")


class ProgressLog:
    """A progress bar on a terminal, periodic log lines off one.

    Args:
        total: number of updates expected (``None``: unknown, no ETA).
        desc: what is progressing (first words of every line).
        initial: position to start from (a resumed epoch).
        unit: what one update counts (``step``, ``batch``).
        logger: where the headless lines go (default: this module's logger).
        every_s: seconds between headless lines (default :func:`progress_every`).
        enabled: ``False`` silences both (non-main DDP ranks).
    """

    def __init__(self, total: Optional[int], desc: str, initial: int = 0, unit: str = "step",
                 logger: Optional[logging.Logger] = None, every_s: Optional[float] = None,
                 enabled: bool = True) -> None:
        self.total, self.desc, self.unit = total, desc, unit
        self.n = self._start = initial
        self.log = logger or logging.getLogger(__name__)
        self.every_s = progress_every() if every_s is None else every_s
        self.enabled = enabled
        self._bar = None
        self._headless = enabled and not on_terminal()
        if enabled and not self._headless and not os.environ.get("CI"):
            from tqdm.auto import tqdm

            self._bar = tqdm(total=total, initial=initial, desc=desc, leave=False, dynamic_ncols=True, unit=unit)
        self._t0 = self._last = time.perf_counter()
        self._postfix: dict[str, Any] = {}

    def __enter__(self) -> "ProgressLog":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def update(self, n: int = 1, **postfix: Any) -> None:
        """Advance by ``n``; ``postfix`` values (``loss=...``) are shown beside the position."""
        self.n += n
        self._postfix = postfix
        if self._bar is not None:
            self._bar.update(n)
            if postfix:
                self._bar.set_postfix({k: _fmt(v) for k, v in postfix.items()}, refresh=False)
        elif self._headless:
            now = time.perf_counter()
            if now - self._last >= self.every_s:
                self._last = now
                self.log.info("%s", self.line())

    def line(self) -> str:
        """``desc 120/200 step loss 1.2345 | 2.10 s/step, eta 2m48s``."""
        done = self.n - self._start
        elapsed = time.perf_counter() - self._t0
        rate = elapsed / done if done else float("nan")
        pos = f"{self.n}/{self.total}" if self.total is not None else str(self.n)
        extra = "".join(f" {k} {_fmt(v)}" for k, v in self._postfix.items())
        eta = ""
        if self.total is not None and done:
            eta = f", eta {format_duration(rate * (self.total - self.n))}"
        speed = f"{rate:.2f} s/{self.unit}" if done else "starting"
        return f"{self.desc} {pos} {self.unit}{extra} | {speed}{eta}"

    def close(self) -> None:
        """Close the bar, or log the final line (headless) when anything progressed."""
        if self._bar is not None:
            self._bar.close()
            self._bar = None
        elif self._headless and self.n > self._start and self.enabled:
            self.log.info("%s (done in %s)", self.line(), format_duration(time.perf_counter() - self._t0))
            self._headless = False


def _fmt(value: Any) -> str:
    return f"{value:.4f}" if isinstance(value, float) else str(value)
