"""Magenta's released checkpoints: download, verify and convert them into the user's cache.

``mt3 download mt3`` (or ``ismir2021``) fetches the T5X checkpoint over plain HTTPS from the
public bucket (``gs://mt3/checkpoints/<name>/`` is ``BASE_URL/<name>/``; no Google SDK, no
account), verifies every file, converts it (:mod:`mt3.model.convert`) and renames the converted
model folder into ``<cache>/models/<name>`` (``mt3.cache.cache_home``: ``MT3_HOME`` or
``~/.cache/mt3``). :func:`default_checkpoint` then finds it, so ``--checkpoint`` can be omitted.

No bucket listing is needed: a T5X checkpoint is the msgpack file ``checkpoint`` plus one zarr
folder per parameter of two or more dimensions (``target.<path with dots>/`` holding ``.zarray``
and its single chunk ``0.0``), so the file names follow from the network's parameter tree
(:func:`release_files`; 1 + 2 x 147 files for both releases). The one-dimensional layer-norm
scales live inside ``checkpoint``.

Verification. For ``mt3`` every file's sha256 and size are checked against ``released/mt3.sha256``
shipped in the package (computed from a copy of the release by :func:`manifest_of`). For
``ismir2021`` we have no copy of the release, so no published hashes: each file's size is checked
against the server's Content-Length, its MD5 against the bucket's ``x-goog-hash`` header when the
server sends one, and the checkpoint's structure against the network (the msgpack names exactly
the derived zarr folders with the expected shapes; conversion decodes every array and checks it).
The sha256 of what was received is recorded in ``<model>/release.json`` either way.

Never half a model: files download into ``<cache>/downloads/<name>/`` (``.part`` while incomplete;
an interrupted download resumes there with HTTP Range requests, within a run after a dropped
connection and on the next run after Ctrl-C), the converted model is built beside its final place
and renamed into it. A file that fails verification discards the whole download.
"""

from __future__ import annotations

import base64
import contextlib
import dataclasses
import errno
import hashlib
import http.client
import json
import os
import shutil
import socket
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

from mt3.atomic import umask_mode
from mt3.cache import cache_home
from mt3.config import get_variant
from mt3.errors import Mt3Error
from mt3.model.convert import convert_checkpoint
from mt3.model.store import abstract_params

BASE_URL = "https://storage.googleapis.com/mt3/checkpoints"  # = gs://mt3/checkpoints
RELEASES = ("mt3", "ismir2021")  # each is also the name of its variant (mt3.config.VARIANTS)
CHECKPOINT_FILE = "checkpoint"
CHUNK = "0.0"  # T5X writes every MT3 array as one zarr chunk (chunks == shape, checked)
MANIFEST_DIR = Path(__file__).resolve().parent / "released"
RELEASE_FILE = "release.json"  # provenance, written into the converted model folder
ATTEMPTS = 6  # per file, within one run; each resumes where the last stopped
TIMEOUT_SECONDS = 60
BLOCK_BYTES = 1 << 16


class DownloadError(Mt3Error):
    """A release that could not be fetched, verified or converted; nothing half-done was kept
    in the cache (an interrupted transfer is kept in <cache>/downloads/ to resume)."""


class InterruptedDownload(DownloadError):
    """The network failed part-way; what arrived is kept to resume on the next run."""


class NoModelError(Mt3Error):
    """No --checkpoint given and no downloaded model in the cache."""


@dataclasses.dataclass(frozen=True)
class Expected:
    """What the manifest says about one file."""

    sha256: str
    size: int


def models_dir() -> Path:
    return cache_home() / "models"


def model_dir(name: str) -> Path:
    """Where ``mt3 download NAME`` puts the converted model."""
    return models_dir() / name


def _check_name(name: str) -> str:
    if name not in RELEASES:
        raise DownloadError(f"unknown release {name!r}; choose one of {', '.join(RELEASES)}")
    return name


def default_checkpoint(variant: str | None = None) -> Path:
    """The model ``mt3 transcribe`` uses without ``--checkpoint``: the downloaded release named by
    ``variant``, else ``mt3``, else ``ismir2021`` (whichever is in the cache)."""
    if variant is not None and variant not in RELEASES:
        raise NoModelError(
            f"no --checkpoint given and --variant {variant} has no released model; "
            "pass --checkpoint DIR (a converted model or a training run)"
        )
    for name in (variant,) if variant else RELEASES:
        if (model_dir(name) / RELEASE_FILE).is_file():
            return model_dir(name)
    which = variant or "mt3"
    raise NoModelError(
        f"no --checkpoint given and no downloaded model: run `mt3 download {which}` once (or "
        f"`mt3 download --from DIR` for a copy on disk); models are kept in {models_dir()}"
    )


# ---------------------------------------------------------------- the files of a release


def release_files(name: str) -> list[str]:
    """The release's file names, relative to its folder, derived from the parameter tree:
    ``checkpoint`` first, then ``target.<a.b.c>/.zarray`` and ``.../0.0`` per array of 2+ dims."""
    folders = sorted(_expected_shapes(_check_name(name)))
    return [CHECKPOINT_FILE, *(f"{d}/{f}" for d in folders for f in (".zarray", CHUNK))]


def _expected_shapes(name: str) -> dict[str, tuple[int, ...]]:
    """{zarr folder name: shape} for the release's arrays of two or more dimensions (T5X keeps
    the one-dimensional layer-norm scales inside ``checkpoint``)."""
    shapes = {}

    def walk(node, prefix):
        for key, value in node.items():
            path = f"{prefix}.{key}" if prefix else str(key)
            if isinstance(value, dict):
                walk(value, path)
            elif len(value.shape) >= 2:
                shapes[f"target.{path}"] = tuple(value.shape)

    walk(abstract_params(get_variant(name)), "")
    return shapes


def read_manifest(name: str) -> dict[str, Expected] | None:
    """``released/<name>.sha256``: {file: Expected}, or None when we ship no hashes for it."""
    path = MANIFEST_DIR / f"{name}.sha256"
    if not path.is_file():
        return None
    entries = {}
    for line in path.read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            sha256, size, file = line.split(maxsplit=2)
            entries[file] = Expected(sha256, int(size))
    return entries


def manifest_of(folder: str | os.PathLike, name: str = "mt3") -> str:
    """The manifest text for a copy of a release (``sha256 size file`` per line): how
    ``released/mt3.sha256`` was made from ../shared/checkpoints/mt3."""
    folder = Path(folder)
    lines = [f"# {name}: {BASE_URL}/{name}/ (sha256, bytes, file), from mt3.hub.manifest_of"]
    for file in release_files(name):
        sha256, size = _digest(folder / file)
        lines.append(f"{sha256} {size} {file}")
    return "\n".join(lines) + "\n"


def _digest(path: Path) -> tuple[str, int]:
    sha256 = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(1 << 20):
            sha256.update(block)
    return sha256.hexdigest(), path.stat().st_size


def _md5_base64(path: Path) -> str:
    md5 = hashlib.md5(usedforsecurity=False)
    with open(path, "rb") as handle:
        while block := handle.read(1 << 20):
            md5.update(block)
    return base64.b64encode(md5.digest()).decode()


def detect_release(folder: Path) -> str:
    """Which release a T5X folder holds, from its embedding's row count in ``checkpoint``."""
    embedding = "target.decoder.token_embedder.embedding"
    rows = _zarr_specs(folder / CHECKPOINT_FILE).get(embedding)
    for name in RELEASES:
        if rows and tuple(rows) == _expected_shapes(name)[embedding]:
            return name
    raise DownloadError(
        f"{folder}: not an mt3 or ismir2021 release (embedding shape {rows}); convert other "
        "checkpoints with `mt3 convert-checkpoint`"
    )


def _zarr_specs(path: Path) -> dict[str, list[int]]:
    """{zarr folder: shape} of the arrays a T5X ``checkpoint`` msgpack points to."""
    import msgpack

    try:
        tree = msgpack.unpackb(
            path.read_bytes(), raw=False, strict_map_key=False,
            ext_hook=lambda code, data: None,  # inline arrays: not needed here
        )  # fmt: skip
        target = tree["optimizer"]["target"]
    except OSError:
        raise
    except Exception as error:
        raise DownloadError(f"{path}: not a T5X checkpoint msgpack ({error})") from None
    specs = {}

    def walk(node):
        if isinstance(node, dict) and "kvstore" in node:
            folder = str(node["kvstore"].get("path", "")).rstrip("/")
            specs[folder] = list(node.get("metadata", {}).get("shape", []))
        elif isinstance(node, dict):
            for child in node.values():
                walk(child)

    walk(target)
    return specs


def check_structure(folder: Path, name: str) -> None:
    """The checkpoint names exactly the derived zarr folders, with the expected shapes, and
    each ``.zarray`` present agrees (one chunk, float32)."""
    expected = _expected_shapes(name)
    found = _zarr_specs(folder / CHECKPOINT_FILE)
    if set(found) != set(expected):
        missing = sorted(set(expected) - set(found))[:3]
        extra = sorted(set(found) - set(expected))[:3]
        raise DownloadError(
            f"{folder / CHECKPOINT_FILE}: does not match the {name} release's parameter tree "
            f"(missing {missing or 'none'}, unexpected {extra or 'none'})"
        )
    wrong = [f"{k} {found[k]}" for k in sorted(expected) if tuple(found[k]) != expected[k]]
    if wrong:
        raise DownloadError(
            f"{folder / CHECKPOINT_FILE}: arrays of the wrong shape for {name}: {wrong[0]} "
            f"(expected {expected[wrong[0].split()[0]]}); is this the {name} release?"
        )
    for array, shape in expected.items():
        zarray = folder / array / ".zarray"
        if zarray.is_file():
            meta = json.loads(zarray.read_text())
            if tuple(meta.get("shape", ())) != shape or tuple(meta.get("chunks", ())) != shape:
                raise DownloadError(f"{zarray}: shape/chunks {meta.get('shape')}, expected {shape}")


# ---------------------------------------------------------------- fetching


def _fetch(url: str, part: Path, bar, attempts: int = ATTEMPTS) -> str | None:
    """Download ``url`` into ``part``, resuming what is there with a Range request, retrying a
    dropped connection; returns the server's base64 MD5 (``x-goog-hash``) when it sent one."""
    last = md5 = None
    for attempt in range(attempts):
        if attempt:
            time.sleep(min(0.25 * 2**attempt, 8.0))
        have = part.stat().st_size if part.exists() else 0
        headers = {"Range": f"bytes={have}-"} if have else {}
        try:
            with urllib.request.urlopen(
                urllib.request.Request(url, headers=headers), timeout=TIMEOUT_SECONDS
            ) as response:
                if have and response.status != 206:  # the server ignored Range: start over
                    bar.update(-have)
                    have = 0
                total = _total_size(response, have)
                if response.status == 200:  # the whole object's MD5 (composite objects have none)
                    md5 = _goog_md5(response.headers.get("x-goog-hash", ""))
                with open(part, "ab" if have else "wb") as out:
                    while block := response.read(BLOCK_BYTES):
                        out.write(block)
                        bar.update(len(block))
            size = part.stat().st_size
            if total is not None and size != total:
                last = f"connection closed at {size} of {total} bytes"
                continue
            return md5
        except urllib.error.HTTPError as error:
            if error.code == 416 and have:  # asked beyond the end: the part is already whole
                return md5
            if error.code in (403, 404):
                raise DownloadError(f"{url}: HTTP {error.code} {error.reason}") from None
            last = f"HTTP {error.code} {error.reason}"
        except urllib.error.URLError as error:
            if isinstance(error.reason, socket.gaierror):
                raise InterruptedDownload(
                    f"{url}: cannot reach the server ({error.reason}); without a network, copy "
                    "the release folder there and run `mt3 download --from DIR`"
                ) from None
            last = str(error.reason)
        except (http.client.HTTPException, OSError) as error:  # dropped connection, timeout
            if isinstance(error, OSError) and error.errno in (errno.ENOSPC, errno.EROFS):
                raise DownloadError(f"{part}: cannot write ({error.strerror})") from None
            last = f"{type(error).__name__}: {error}"
    raise InterruptedDownload(
        f"{url}: download failed after {attempts} attempts ({last}); run the same command "
        "again to resume"
    )


def _total_size(response, have: int) -> int | None:
    content_range = response.headers.get("Content-Range", "")
    if response.status == 206 and "/" in content_range and not content_range.endswith("*"):
        return int(content_range.rsplit("/", 1)[1])
    length = response.headers.get("Content-Length")
    return None if length is None else have + int(length)


def _goog_md5(header: str) -> str | None:
    for part in header.split(","):
        key, _, value = part.strip().partition("=")
        if key == "md5":
            return value
    return None


@contextlib.contextmanager
def _lock(name: str) -> Iterator[None]:
    """One ``mt3 download NAME`` at a time per cache."""
    import fcntl

    path = cache_home() / "downloads" / f"{name}.lock"
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            raise DownloadError(
                f"another `mt3 download {name}` is running on {cache_home()}; wait for it"
            ) from None
        yield


def _progress_bar(total: int | None, name: str):
    from tqdm import tqdm

    return tqdm(
        total=total, desc=f"download {name}", unit="B", unit_scale=True, unit_divisor=1024,
        file=sys.stderr, leave=False,
    )  # fmt: skip


def _verify(path: Path, file: str, expected: Expected | None, md5: str | None) -> str:
    """The file's sha256, after checking it against the manifest (and the server's MD5)."""
    sha256, size = _digest(path)
    if expected is not None and (sha256, size) != (expected.sha256, expected.size):
        raise DownloadError(
            f"{file}: sha256 {sha256[:16]}... ({size} bytes) differs from the released file's "
            f"{expected.sha256[:16]}... ({expected.size} bytes): the copy is damaged or is not "
            "the release; nothing was installed"
        )
    if md5 is not None and _md5_base64(path) != md5:
        raise DownloadError(f"{file}: MD5 differs from the server's x-goog-hash; try again")
    return sha256


def _download_files(name: str, base_url: str, folder: Path, manifest) -> dict[str, str]:
    """Fetch every file of the release into ``folder``; returns {file: sha256}."""
    files = release_files(name)
    total = sum(e.size for e in manifest.values()) if manifest else None
    hashes = {}
    with _progress_bar(total, name) as bar:
        for index, file in enumerate(files):
            target = folder / file
            part = target.with_name(target.name + ".part")
            target.parent.mkdir(parents=True, exist_ok=True)
            expected = manifest.get(file) if manifest else None
            md5 = None
            if not target.is_file():
                bar.update(part.stat().st_size if part.exists() else 0)
                bar.set_postfix_str(f"{index + 1}/{len(files)} files", refresh=False)
                md5 = _fetch(f"{base_url.rstrip('/')}/{name}/{file}", part, bar)
                os.replace(part, target)
            else:
                bar.update(target.stat().st_size)
            hashes[file] = _verify(target, file, expected, md5)
            if file == CHECKPOINT_FILE:  # its tree names the rest: check before fetching them
                check_structure(folder, name)
    return hashes


# ---------------------------------------------------------------- the command


def download(
    name: str | None = "mt3",
    *,
    source: str | os.PathLike | None = None,
    base_url: str = BASE_URL,
    overwrite: bool = False,
    log=print,
) -> Path:
    """Put a released model into the cache; returns its folder (``<cache>/models/<name>``).

    ``source``: a folder already holding the release (the files of ``gs://mt3/checkpoints/<name>``)
    instead of the network; ``name`` None then means "whichever release it holds". An existing
    model is kept (and returned) unless ``overwrite``.
    """
    if source is not None:
        source = Path(source)
        if (source / "config.json").is_file() and not (source / CHECKPOINT_FILE).exists():
            raise DownloadError(
                f"--from {source}: already a converted model; use it with --checkpoint {source}"
            )
        if not (source / CHECKPOINT_FILE).is_file():
            raise DownloadError(
                f"--from {source}: no T5X 'checkpoint' file there; give the folder of the "
                "release (the one holding 'checkpoint' and the target.* folders)"
            )
        name = name or detect_release(source)
    name = _check_name(name or "mt3")
    final = model_dir(name)
    if (final / RELEASE_FILE).is_file() and not overwrite:
        log(f"{name}: already in the cache at {final} (--overwrite fetches it again)")
        return final
    if final.exists() and not overwrite:
        raise DownloadError(f"{final}: not made by `mt3 download`; --overwrite replaces it")
    _check_space(final.parent, manifest := read_manifest(name), source is None)
    with _lock(name):
        if source is not None:
            hashes = _verify_folder(source, name, manifest)
            return _install(name, source, hashes, manifest, str(source), overwrite, log)
        downloads = cache_home() / "downloads" / name
        downloads.mkdir(parents=True, exist_ok=True)
        log(f"{name}: {base_url.rstrip('/')}/{name}/ -> {downloads}")
        try:
            hashes = _download_files(name, base_url, downloads, manifest)
            model = _install(name, downloads, hashes, manifest, base_url, overwrite, log)
        except InterruptedDownload:  # keep what arrived: the next run resumes
            raise
        except KeyboardInterrupt:
            log(f"{name}: interrupted; run the same command again to resume")
            raise
        except DownloadError:  # bad data: keep nothing
            shutil.rmtree(downloads, ignore_errors=True)
            raise
        shutil.rmtree(downloads, ignore_errors=True)
    return model


def _check_space(folder: Path, manifest, downloading: bool) -> None:
    """Room for the download (if any) and the converted model (float32, ~175 MB)."""
    release = sum(e.size for e in manifest.values()) if manifest else 180 << 20
    needed = (release if downloading else 0) + (190 << 20)
    probe = next((p for p in [folder, *folder.parents] if p.exists()), Path("/"))
    free = shutil.disk_usage(probe).free
    if free < needed:
        raise DownloadError(
            f"{probe}: {free >> 20} MB free, the model needs about {needed >> 20} MB; free some "
            "space or move the cache with MT3_HOME"
        )


def _verify_folder(folder: Path, name: str, manifest) -> dict[str, str]:
    missing = [f for f in release_files(name) if not (folder / f).is_file()]
    if missing:
        more = f" and {len(missing) - 3} more" if len(missing) > 3 else ""
        raise DownloadError(
            f"--from {folder}: missing {', '.join(missing[:3])}{more}; copy the whole release"
        )
    check_structure(folder, name)
    return {f: _verify(folder / f, f, manifest.get(f) if manifest else None, None)
            for f in release_files(name)}  # fmt: skip


def _install(name, t5x: Path, hashes, manifest, source: str, overwrite: bool, log) -> Path:
    """Convert into a folder beside the final one, record its provenance, rename it in."""
    final = model_dir(name)
    final.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{name}.", suffix=".partial", dir=final.parent))
    try:
        log(f"{name}: {len(hashes)} files verified; converting (about 10 s)")
        try:
            config = convert_checkpoint(t5x, staging / name, variant=name)
        except Mt3Error as error:
            raise DownloadError(f"{name}: the release does not convert ({error})") from None
        record = {
            "release": name,
            "source": source,
            "verified": "sha256 and size of every file against mt3/released/"
            f"{name}.sha256" if manifest else "no published hashes: sizes, the server's MD5 "
            "when given, the checkpoint's structure and every array's shape",
            "parameters": config.num_params(),
            "date": datetime.now(UTC).isoformat(timespec="seconds"),
            "sha256": hashes,
        }  # fmt: skip
        (staging / name / RELEASE_FILE).write_text(json.dumps(record, indent=1) + "\n")
        os.chmod(staging / name / RELEASE_FILE, umask_mode())
        if final.exists() and overwrite:
            os.replace(final, staging / "old")
        os.replace(staging / name, final)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    log(f"{name}: {config.num_params():,} parameters -> {final}")
    return final


def cached_models() -> dict[str, Path | None]:
    """{release: its folder in the cache, or None}."""
    return {n: model_dir(n) if (model_dir(n) / RELEASE_FILE).is_file() else None for n in RELEASES}
