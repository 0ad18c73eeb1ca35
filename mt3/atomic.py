"""Never lose a user's file: atomic writes, umask-respecting modes, and output checks.

A write goes to a temporary file beside the target that is renamed into place when complete, so
a crash, a full disk or an error half-way leaves the old file or no file, never a truncated one.
Files get the mode the user's umask gives (0644 under the usual 022), as with any other tool.

:func:`check_outputs` is called by every command before any work: an output that is one of the
command's own inputs is always an error, and an existing output is an error unless the user
asked to overwrite it (or to skip it, to resume a folder job).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path

from mt3.errors import Mt3Error, UsageError


class WriteError(Mt3Error, OSError):
    """An output that could not be written (full disk, no permission, a file where a folder
    should be); nothing was left behind."""


def disk_full(folder: Path) -> bool:
    """Whether less than 1 MiB is free where ``folder`` lives (writers that fail on a full disk
    rarely say so)."""
    try:
        return shutil.disk_usage(folder).free < 1 << 20
    except OSError:
        return False


def umask_mode(mode: int = 0o666) -> int:
    """``mode`` with the process's umask applied (0o666 -> 0o644 under umask 022)."""
    mask = os.umask(0)
    os.umask(mask)
    return mode & ~mask


def check_writable(path: Path) -> None:
    """Raise WriteError unless ``path`` can be created: its nearest existing ancestor must be a
    folder this process may write in (a read-only file system or a folder without permission
    is found before any work, not at the first write)."""
    for parent in [path.parent, *path.parent.parents]:
        if parent.exists():
            if not parent.is_dir():
                raise WriteError(f"{path}: cannot write there, {parent} is a file, not a folder")
            if not os.access(parent, os.W_OK | os.X_OK):
                raise WriteError(f"{path}: cannot write there, {parent} is not writable")
            return


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path in the target's folder; rename it to ``path`` on success.

    The temporary file keeps the target's suffix so that libraries choosing a format by extension
    (numpy's .npz, soundfile) still work. OSErrors (a full disk, say) become a WriteError that
    names the target, not the temporary file.
    """
    path = Path(path)
    check_writable(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(
            prefix=f".{path.name}.", suffix=f".tmp{path.suffix}", dir=path.parent
        )
        os.close(fd)
    except OSError as error:
        raise WriteError(f"{path}: cannot write ({error.strerror})") from None
    tmp = Path(tmp)
    try:
        yield tmp
        os.chmod(tmp, umask_mode())
        os.replace(tmp, path)
    except Mt3Error:
        raise
    except Exception as error:
        # Writers report a full disk in their own ways (soundfile: "System error."): look.
        if disk_full(path.parent):
            raise WriteError(f"{path}: cannot write (no space left on device)") from None
        if isinstance(error, OSError):
            raise WriteError(f"{path}: cannot write ({error.strerror or error})") from None
        raise
    finally:
        tmp.unlink(missing_ok=True)


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def same_file(a: Path, b: Path) -> bool:
    """Whether two paths name one file (resolving links; hard links too when both exist)."""
    try:
        if a.exists() and b.exists():
            return os.path.samefile(a, b)
    except OSError:
        pass
    return a.resolve() == b.resolve()


def check_outputs(
    outputs: Iterable[str | os.PathLike],
    inputs: Iterable[str | os.PathLike] = (),
    *,
    overwrite: bool = False,
    skip_existing: bool = False,
) -> set[Path]:
    """Check planned outputs before any work; returns the outputs that already exist (to skip
    when ``skip_existing``).

    Raises UsageError listing every output that is also an input (never allowed), every output
    that is given twice, and, unless ``overwrite`` or ``skip_existing``, every output that exists.
    """
    outputs = [Path(p) for p in outputs]
    inputs = [Path(p) for p in inputs]
    for path in outputs:
        check_writable(path)
    clashes = sorted({str(o) for o in outputs for i in inputs if same_file(o, i)})
    if clashes:
        raise UsageError(
            f"would write over its own input: {', '.join(clashes)}; choose another output (-o)"
        )
    resolved = [p.resolve() for p in outputs]
    twice = sorted({str(p) for p, r in zip(outputs, resolved) if resolved.count(r) > 1})
    if twice:
        raise UsageError(f"two outputs would be written to {', '.join(twice)}")
    existing = {p for p in outputs if p.exists()}
    if existing and not (overwrite or skip_existing):
        shown = ", ".join(sorted(map(str, existing))[:5])
        more = f" and {len(existing) - 5} more" if len(existing) > 5 else ""
        raise UsageError(
            f"{shown}{more}: already exist{'s' if len(existing) == 1 else ''}; "
            "pass --overwrite to replace, or --skip-existing to keep them and do the rest"
        )
    return existing if skip_existing else set()
