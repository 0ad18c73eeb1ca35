"""The user's cache folder, and XLA's persistent compilation cache in it.

``MT3_HOME`` moves the folder (default ``$XDG_CACHE_HOME/mt3``, i.e. ``~/.cache/mt3``). Compiled
programs are kept in ``<cache>/jax``, so a second ``mt3 transcribe`` skips the compilation (it
still traces the programs): measured with the released mt3 weights on 2 CPU cores, a folder of
318 s of music took 46.7 s the first time and 32.4 s the next (README, Speed).
``MT3_COMPILATION_CACHE=off`` turns it off.
"""

from __future__ import annotations

import os
from pathlib import Path

COMPILATION_CACHE_ENV = "MT3_COMPILATION_CACHE"
OFF = ("0", "off", "false", "no")


def cache_home() -> Path:
    """``$MT3_HOME``, else ``$XDG_CACHE_HOME/mt3``, else ``~/.cache/mt3``."""
    if os.environ.get("MT3_HOME"):
        return Path(os.environ["MT3_HOME"]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "mt3"


def enable_compilation_cache() -> Path | None:
    """Point JAX's persistent compilation cache at ``<cache>/jax`` (once per process; a cache
    folder the user already set for JAX wins). Returns the folder, or None when turned off or
    when the folder cannot be created (compilation then simply is not cached)."""
    import jax

    if os.environ.get(COMPILATION_CACHE_ENV, "").strip().lower() in OFF:
        return None
    if jax.config.jax_compilation_cache_dir:
        return Path(jax.config.jax_compilation_cache_dir)
    folder = cache_home() / "jax"
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError:
        return None
    jax.config.update("jax_compilation_cache_dir", str(folder))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.1)
    return folder
