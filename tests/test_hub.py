"""`mt3 download`: the released checkpoints fetched over HTTP from a local server that serves
../shared/checkpoints/mt3 under the bucket's paths (this machine has no internet), verified,
converted into the user cache, and found by `mt3 transcribe` without --checkpoint."""

from __future__ import annotations

import base64
import hashlib
import http.server
import json
import os
import shutil
import threading
from pathlib import Path

import pytest

from mt3 import hub


@pytest.fixture
def home(tmp_path, monkeypatch):
    """A fresh user cache (MT3_HOME) for one test."""
    folder = tmp_path / "home"
    monkeypatch.setenv("MT3_HOME", str(folder))
    return folder


@pytest.fixture
def release(released_checkpoint):
    """../shared/checkpoints/mt3, or a skip saying why."""
    return released_checkpoint("mt3")


class Bucket:
    """A local stand-in for https://storage.googleapis.com/mt3/checkpoints: serves
    ``/<name>/<file>`` from ``folders[name]`` with Range support. ``drop`` names files whose first
    full response stops half-way (the connection is closed); ``corrupt`` names files served with
    one byte changed (the bucket's ``x-goog-hash`` MD5, sent with ``goog_hash``, is the
    original's); ``ranges=False`` ignores Range headers, as simple servers do. Every request is
    recorded as (path, Range header)."""

    def __init__(self, folders: dict[str, Path], drop=(), corrupt=(), goog_hash=False, ranges=True):
        self.folders, self.drop, self.corrupt = folders, set(drop), set(corrupt)
        self.goog_hash, self.ranges = goog_hash, ranges
        self.requests: list[tuple[str, str | None]] = []
        bucket = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802 (http.server's name)
                bucket.requests.append((self.path, self.headers.get("Range")))
                name, _, file = self.path.lstrip("/").partition("/")
                path = bucket.folders.get(name, Path("/nonexistent")) / file
                if not path.is_file():
                    self.send_error(404)
                    return
                data = bytearray(path.read_bytes())
                md5 = base64.b64encode(hashlib.md5(data).digest()).decode()
                if file in bucket.corrupt:
                    data[len(data) // 2] ^= 0xFF
                start = 0
                if self.headers.get("Range") and bucket.ranges:
                    start = int(self.headers["Range"].split("=")[1].rstrip("-"))
                    if start >= len(data):
                        self.send_error(416)
                        return
                    self.send_response(206)
                    self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
                else:
                    self.send_response(200)
                self.send_header("Content-Length", str(len(data) - start))
                if bucket.goog_hash:
                    self.send_header("x-goog-hash", f"crc32c=AAAAAA==,md5={md5}")
                self.end_headers()
                body = bytes(data[start:])
                if file in bucket.drop and start == 0:
                    bucket.drop.discard(file)
                    self.wfile.write(body[: len(body) // 2])
                    self.wfile.flush()
                    self.close_connection = True
                    self.connection.shutdown(2)  # the network goes away half-way
                    return
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def bucket():
    made = []

    def make(folders, **options):
        made.append(Bucket(folders, **options))
        return made[-1]

    yield make
    for server in made:
        server.close()


def test_file_names_derived_from_the_parameter_tree_are_exactly_the_release(release):
    on_disk = sorted(str(p.relative_to(release)) for p in release.rglob("*") if p.is_file())
    assert sorted(hub.release_files("mt3")) == on_disk
    assert sorted(hub.read_manifest("mt3")) == on_disk
    assert len(hub.release_files("ismir2021")) == len(on_disk) == 1 + 2 * 147


def test_shipped_manifest_is_the_sha256_of_the_release(release):
    assert (hub.MANIFEST_DIR / "mt3.sha256").read_text() == hub.manifest_of(release)
    assert hub.read_manifest("mt3")["checkpoint"].sha256 == (
        "1a5ef8eddadfb4065840ed8e9c167b3856bd0a31218214b51fc69ea7593678b5"
    )


def test_download_resumes_a_dropped_connection_and_installs_a_verified_model(home, release, bucket):
    chunk = "target.decoder.logits_dense.kernel/0.0"
    server = bucket({"mt3": release}, drop={"checkpoint", chunk})
    folder = hub.download("mt3", base_url=server.url, log=lambda _: None)

    assert folder == home / "models" / "mt3" == hub.default_checkpoint()
    size = (release / chunk).stat().st_size
    assert (f"/mt3/{chunk}", f"bytes={size // 2}-") in server.requests  # resumed, not restarted
    assert ("/mt3/checkpoint", "bytes=447102-") in server.requests
    assert len(server.requests) == 295 + 2
    record = json.loads((folder / hub.RELEASE_FILE).read_text())
    assert record["sha256"][chunk] == hub.read_manifest("mt3")[chunk].sha256
    assert sorted(os.listdir(home / "models")) == ["mt3"]  # no staging folder left
    assert not (home / "downloads" / "mt3").exists()
    from mt3.model.store import read_config

    assert read_config(folder).num_params() == 45_896_704


def test_a_corrupted_file_is_refused_and_nothing_is_kept(home, release, bucket, run_cli):
    bad = sorted(hub.release_files("mt3"))[3]
    server = bucket({"mt3": release}, corrupt={bad})
    status, _, err = run_cli("download", "mt3", "--url", server.url)
    assert status == 2
    assert err.splitlines()[-1].startswith(f"mt3 download: error: {bad}: sha256 ")
    assert err.count("\n") == 1  # the progress bar, then one line
    assert not (home / "models" / "mt3").exists()
    assert not (home / "downloads" / "mt3").exists()
    assert not list((home / "models").glob(".mt3*"))


def test_without_published_hashes_the_servers_md5_is_checked(home, release, bucket, monkeypatch):
    """ismir2021's way (no shipped sha256), tried on the mt3 files: a file damaged in transit
    differs from the bucket's x-goog-hash MD5 and nothing is kept."""
    monkeypatch.setattr(hub, "read_manifest", lambda name: None)
    bad = sorted(hub.release_files("mt3"))[5]
    server = bucket({"mt3": release}, corrupt={bad}, goog_hash=True)
    with pytest.raises(hub.DownloadError, match=f"{bad}: MD5 differs"):
        hub.download("mt3", base_url=server.url, log=lambda _: None)
    assert not (home / "models" / "mt3").exists()
    assert not (home / "downloads" / "mt3").exists()


def test_an_interrupted_run_resumes_on_the_next_run(home, tmp_path, bucket, monkeypatch):
    """A run that gives up (the connection keeps dropping) keeps the partial file; the next
    run asks only for the rest."""
    served = tmp_path / "served"
    served.mkdir()
    (served / "blob").write_bytes(os.urandom(300_000))
    server = bucket({"x": served}, drop={"blob"})
    part = tmp_path / "blob.part"

    class Bar:
        def update(self, n):
            pass

    with pytest.raises(hub.InterruptedDownload, match="run the same command again to resume"):
        hub._fetch(f"{server.url}/x/blob", part, Bar(), attempts=1)
    assert part.stat().st_size == 150_000
    hub._fetch(f"{server.url}/x/blob", part, Bar(), attempts=1)
    assert part.read_bytes() == (served / "blob").read_bytes()
    assert server.requests[-1] == ("/x/blob", "bytes=150000-")

    plain = bucket({"x": served}, ranges=False)  # a server without Range: the file starts over
    part.write_bytes(part.read_bytes()[:1000])
    hub._fetch(f"{plain.url}/x/blob", part, Bar(), attempts=1)
    assert part.read_bytes() == (served / "blob").read_bytes()
    assert plain.requests == [("/x/blob", "bytes=1000-")]


def test_ismir2021_without_hashes_checks_the_structure(home, release, bucket):
    """No published sha256 for ismir2021: a checkpoint of the wrong shape is still refused, from
    its msgpack alone (served here: the mt3 files under the ismir2021 path)."""
    assert hub.read_manifest("ismir2021") is None
    server = bucket({"ismir2021": release})
    with pytest.raises(hub.DownloadError, match="wrong shape for ismir2021"):
        hub.download("ismir2021", base_url=server.url, log=lambda _: None)
    assert [p for p, _ in server.requests] == ["/ismir2021/checkpoint"]
    assert not (home / "models" / "ismir2021").exists()
    assert not (home / "downloads" / "ismir2021").exists()


def test_download_from_a_folder_installs_it_once(home, release, run_cli):
    status, out, err = run_cli("download", "--from", release)
    assert status == 0, err
    assert f"ready: {home / 'models' / 'mt3'}" in out
    assert hub.cached_models()["mt3"] == home / "models" / "mt3"
    status, out, _ = run_cli("download", "--from", release)  # again: kept, nothing redone
    assert status == 0 and "already in the cache" in out
    status, _, err = run_cli("download", "ismir2021", "--from", release)
    assert status == 2 and "wrong shape for ismir2021" in err


def test_download_from_an_incomplete_folder_names_the_missing_file(
    home, release, tmp_path, run_cli
):
    copy = tmp_path / "copy"
    shutil.copytree(release, copy)
    shutil.rmtree(copy / "target.decoder.logits_dense.kernel")
    status, _, err = run_cli("download", "--from", copy)
    assert status == 2
    assert "missing target.decoder.logits_dense.kernel/.zarray" in err
    assert not (home / "models" / "mt3").exists()
    status, _, err = run_cli("download", "--from", tmp_path)
    assert status == 2 and "no T5X 'checkpoint' file" in err


def test_download_from_a_converted_model_points_to_checkpoint(home, tiny_checkpoint, run_cli):
    status, _, err = run_cli("download", "--from", tiny_checkpoint)
    assert status == 2 and f"use it with --checkpoint {tiny_checkpoint}" in err


def test_transcribe_without_checkpoint_uses_the_cached_model(
    home, tiny_checkpoint, tmp_path, write_pair, run_cli
):
    write_pair(tmp_path, "take", seconds=1.0)
    status, _, err = run_cli("transcribe", tmp_path / "take.flac", "-o", tmp_path / "out")
    assert status == 2
    assert err.count("\n") == 1 and "no downloaded model: run `mt3 download mt3` once" in err

    shutil.copytree(tiny_checkpoint, home / "models" / "mt3")  # as `mt3 download` leaves it
    (home / "models" / "mt3" / hub.RELEASE_FILE).write_text("{}")
    status, out, err = run_cli("transcribe", tmp_path / "take.flac", "-o", tmp_path / "out")
    assert status == 0, err
    assert (tmp_path / "out" / "take.mid").is_file()
    status, _, err = run_cli("transcribe", tmp_path / "take.flac", "--variant", "ismir2021")
    assert status == 2 and "`mt3 download ismir2021`" in err


def test_an_unreachable_server_says_to_use_from(home, run_cli):
    status, _, err = run_cli("download", "mt3", "--url", "http://no-such-host.invalid")
    assert status == 2 and "cannot reach the server" in err and "--from DIR" in err
