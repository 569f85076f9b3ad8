"""Where numba keeps compiled code: a directory that is writable, chosen before numba loads.

numba's own default is a ``__pycache__`` beside the source, then a per-user cache; with neither
writable (a read-only install under a user with no home) ``@njit(cache=True)`` raises at import.
``configure`` picks the first writable of: ``NUMBA_CACHE_DIR`` (set by the user), the directory
the caller gives (the worker passes ``DATA_DIR/numba-cache``), the package's own directory,
``$XDG_CACHE_HOME/backprop`` (or ``~/.cache/backprop``), a per-user directory under the system's
temporary directory; and when none is, compiles without a cache (every process compiles).
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

_chosen: list[Path | None] = []


def _writable(path: Path) -> bool:
    try:
        path.mkdir(parents=True, exist_ok=True)
        tempfile.TemporaryFile(dir=path).close()
    except OSError:
        return False
    return True


def _candidates(preferred: str | os.PathLike[str] | None) -> list[Path]:
    out = []
    if os.environ.get("NUMBA_CACHE_DIR"):
        out.append(Path(os.environ["NUMBA_CACHE_DIR"]))
    if preferred is not None:
        out.append(Path(preferred))
    out.append(Path(__file__).resolve().parent / "__pycache__")
    home = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    out.append(Path(home) / "backprop")
    uid = os.getuid() if hasattr(os, "getuid") else "user"
    out.append(Path(tempfile.gettempdir()) / f"backprop-numba-{uid}")
    return out


def configure(preferred: str | os.PathLike[str] | None = None) -> Path | None:
    """Choose the cache directory (once per process; later calls return the first choice).
    Returns it, or ``None`` when nothing is writable (then the kernel compiles uncached)."""
    if _chosen:
        return _chosen[0]
    path = next((p for p in _candidates(preferred) if _writable(p)), None)
    _chosen.append(path)
    if path is not None:
        os.environ["NUMBA_CACHE_DIR"] = str(path)
        config = sys.modules.get("numba.core.config")
        if config is not None:  # numba already imported elsewhere: it reads this attribute
            config.CACHE_DIR = str(path)
    return path


def directory() -> Path | None:
    """The chosen directory (``configure`` first)."""
    return configure()
