"""The real `imgsearch` command, run as `python -m imgsearch ARGS...` runs it, in a process
forked from this test process's warm interpreter (support/warm_python.py: the same code, the
same output and exit status, a second less of imports each)."""

from __future__ import annotations

import os
from pathlib import Path

from .warm_python import Finished, shared


def imgsearch(
    *args: str | Path, env: dict[str, str] | None = None, cwd: Path | None = None, timeout: float = 300
) -> Finished:
    """`python -m imgsearch ARGS...` with `env` (default: this process's environment) in `cwd`;
    killed after `timeout` seconds. Its stdout, stderr and returncode, as subprocess.run's."""
    return shared().run_module(
        "imgsearch",
        [str(a) for a in args],
        env=dict(os.environ if env is None else env),
        cwd=cwd or Path.cwd(),
        timeout=timeout,
    )
