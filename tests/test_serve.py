"""`mt3 serve`: the request logic on its own (tiny model), then the real server in headless Chromium
(upload, transcribe, download the MIDI, screenshots; a recording from Chromium's fake microphone;
a bad file, an oversized one), queued requests through gradio's client, and a clean stop that
leaves no file behind."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest
import soundfile

from mt3.app import ServeError, ServeOptions, TranscriptionService, instruments_spec
from mt3.audio import AudioError
from mt3.outputs import WRITERS
from mt3.vocab import VocabError

REPO = Path(__file__).resolve().parents[1]
UPLOAD_LIMIT_MB = 0.5  # the served app's --max-upload-mb: tone.wav and a 1.5 s recording fit
SERVER_START_SECONDS = 300  # import JAX and gradio, load and compile the tiny model (2 busy cores)


def write_tone(path: Path, seconds: float = 2.0, sample_rate: int = 22050, channels: int = 1):
    """Two sine notes (A4 then E4), 16-bit wav."""
    t = np.arange(int(seconds * sample_rate)) / sample_rate
    tone = np.where(t < seconds / 2, np.sin(2 * np.pi * 440 * t), np.sin(2 * np.pi * 330 * t))
    soundfile.write(path, np.stack([0.3 * tone] * channels, axis=1), sample_rate)
    return path


@pytest.fixture(scope="module")
def media(tmp_path_factory):
    """tone.wav (2 s, 88 kB), big.wav (4 s stereo 44.1 kHz, 706 kB), bad.wav (text)."""
    folder = tmp_path_factory.mktemp("media")
    write_tone(folder / "tone.wav")
    write_tone(folder / "big.wav", seconds=4.0, sample_rate=44100, channels=2)
    (folder / "bad.wav").write_text("not audio\n")
    return folder


# --- the request logic, without a server -----------------------------------------------------


def test_serve_options_are_checked():
    with pytest.raises(ServeError, match="--port 0"):
        ServeOptions(port=0)
    with pytest.raises(ServeError, match="--max-upload-mb"):
        ServeOptions(max_upload_mb=0)
    assert ServeOptions(max_upload_mb=1.5).max_upload_bytes == 1_500_000


def test_instrument_choices_become_one_spec():
    assert instruments_spec([]) is None
    assert instruments_spec(["piano", "drums", "piano"]) == "drums,piano"
    with pytest.raises(VocabError, match="unknown instrument 'kazoo'"):
        instruments_spec(["kazoo"])


def test_service_writes_every_format_and_keeps_instruments(tiny_checkpoint, media, tmp_path):
    import mido

    from mt3.model.store import load_model
    from mt3.notes import read_midi

    service = TranscriptionService(load_model(tiny_checkpoint), tmp_path / "results")
    stages = []
    status = lambda text, done: stages.append((text, done))
    result = service.run(media / "tone.wav", ["piano"], status=status)
    assert set(result.files) == set(WRITERS)
    assert all(path.is_file() and path.parent.parent == tmp_path / "results"
               for path in result.files.values())  # fmt: skip
    assert mido.MidiFile(result.files["midi"]).type in (0, 1)
    notes = read_midi(result.files["midi"]).notes
    assert not notes.is_drum.any() and set(notes.program.tolist()) <= set(range(8))
    assert result.summary.startswith("tone.wav: ") and "2.0 s of audio" in result.summary
    transcribing, writing = ("transcribing tone.wav", 0), ("writing " + ", ".join(WRITERS), 1)
    assert stages == [("compiling the model for piano (first use)", 0), transcribing, writing]
    stages.clear()
    service.run(media / "tone.wav", ["piano"], status=status)
    assert stages == [transcribing, writing]  # compiled once


def test_service_refuses_bad_and_oversized_files_by_name(tiny_checkpoint, media, tmp_path):
    from mt3.model.store import load_model

    service = TranscriptionService(
        load_model(tiny_checkpoint), tmp_path / "results", ServeOptions(max_upload_mb=0.1)
    )
    with pytest.raises(ServeError, match=r"^big.wav: 0.7 MB is over this server's upload limit"):
        service.run(media / "big.wav")
    with pytest.raises(AudioError, match=r"^bad.wav: cannot decode audio") as error:
        service.run(media / "bad.wav")
    assert str(media) not in str(error.value)  # the server's folders stay private
    with pytest.raises(ServeError, match="no audio"):
        service.run(None)
    assert not list((tmp_path / "results").iterdir())  # refused before any work


def test_serve_errors_are_one_line(run_cli, tmp_path, monkeypatch):
    status, _, err = run_cli("serve")
    assert status == 2 and err.count("\n") == 1 and "no --checkpoint given" in err
    status, _, err = run_cli("serve", "--checkpoint", tmp_path, "--max-upload-mb", "-1")
    assert status == 2 and "--max-upload-mb -1" in err
    with socket.socket() as taken:  # a port in use is refused before the model is loaded
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        status, _, err = run_cli("serve", "--checkpoint", tmp_path, "--port", port)
    assert status == 2 and f"--port {port}: cannot listen there" in err and err.count("\n") == 1
    monkeypatch.setitem(sys.modules, "gradio", None)  # as if the extra were not installed
    status, _, err = run_cli("serve", "--checkpoint", tmp_path)
    assert status == 2 and "mt3 serve needs gradio" in err and err.count("\n") == 1


# --- the real server, in a browser --------------------------------------------------------------


def find_browser() -> tuple[str, str]:
    """(chromium binary, chromedriver), or skip saying what is missing."""
    pytest.importorskip("gradio", reason="the serve extra (gradio) is not installed")
    pytest.importorskip("selenium", reason="selenium is not installed (bash scripts/setup.sh)")
    binary = next(filter(None, map(shutil.which, ("chromium", "chromium-browser"))), None)
    driver = shutil.which("chromedriver")
    if not binary or not driver:
        pytest.skip("chromium and chromium-driver are not installed (bash scripts/setup.sh)")
    return binary, driver


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """`mt3 serve` in a subprocess with an empty working folder and its own TMPDIR."""

    def __init__(self, checkpoint: Path, folder: Path):
        self.cwd, self.tmp = folder / "cwd", folder / "tmp"
        self.cwd.mkdir()
        self.tmp.mkdir()
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/"
        env = {**os.environ, "PYTHONPATH": str(REPO), "TMPDIR": str(self.tmp)}
        command = [sys.executable, "-m", "mt3", "serve", "--checkpoint", str(checkpoint),
                   "--variant", "tiny", "--port", str(self.port),
                   "--max-upload-mb", str(UPLOAD_LIMIT_MB)]  # fmt: skip
        self.process = subprocess.Popen(
            command, cwd=self.cwd, env=env, text=True,
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        )  # fmt: skip
        self.lines: list[str] = []
        threading.Thread(target=lambda: self.lines.extend(self.process.stdout), daemon=True).start()
        deadline = time.monotonic() + SERVER_START_SECONDS
        while not any("mt3 serve: open" in line for line in self.lines):
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                pytest.fail("mt3 serve did not start:\n" + "".join(self.lines))
            time.sleep(0.2)

    def stop(self) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(60)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return self.process.returncode


@pytest.fixture(scope="module")
def server(tiny_checkpoint, tmp_path_factory):
    find_browser()
    started = Server(tiny_checkpoint, tmp_path_factory.mktemp("serve"))
    yield started
    started.stop()


@pytest.fixture(scope="module")
def browser(server):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    binary, driver_path = find_browser()
    options = webdriver.ChromeOptions()
    options.binary_location = binary
    # Chromium's fake microphone (a beep each second) stands in for a real one, permission given.
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                     "--window-size=1400,1300", "--use-fake-device-for-media-stream",
                     "--use-fake-ui-for-media-stream"):  # fmt: skip
        options.add_argument(argument)
    driver = webdriver.Chrome(service=Service(driver_path), options=options)
    driver.set_page_load_timeout(60)
    yield driver
    driver.quit()


def open_page_and_upload(driver, url: str, path: Path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    driver.get(url)
    WebDriverWait(driver, 60).until(lambda d: d.find_elements(By.CSS_SELECTOR, "input[type=file]"))
    return lambda: driver.find_element(By.CSS_SELECTOR, "input[type=file]").send_keys(str(path))


def wait_for_text(driver, text: str, seconds: float = 120) -> str:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    body = lambda d: d.find_element(By.TAG_NAME, "body").text
    WebDriverWait(driver, seconds).until(lambda d: text in body(d))
    return body(driver)


def save_screenshot(driver, folder: Path, name: str) -> Path:
    """Into the test's folder and, when MT3_SCREENSHOTS names a folder, there too."""
    path = folder / name
    assert driver.save_screenshot(str(path)), f"no screenshot {path}"
    if os.environ.get("MT3_SCREENSHOTS"):
        keep = Path(os.environ["MT3_SCREENSHOTS"])
        keep.mkdir(parents=True, exist_ok=True)
        shutil.copy(path, keep / name)
    return path


def test_browser_transcribes_an_upload_and_offers_the_midi(server, browser, media, tmp_path):
    import mido
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    upload = open_page_and_upload(browser, server.url, media / "tone.wav")
    before = save_screenshot(browser, tmp_path, "serve-before.png")
    upload()
    WebDriverWait(browser, 30).until(lambda d: "0:02" in d.find_element(By.TAG_NAME, "body").text)
    browser.find_element(By.ID, "transcribe").click()

    def links(driver):
        anchors = driver.find_elements(By.CSS_SELECTOR, "#downloads a")
        return [a.get_attribute("href") or "" for a in anchors]

    WebDriverWait(browser, 180).until(lambda d: any(h.endswith(".mid") for h in links(d)))
    summary = browser.find_element(By.ID, "summary").text
    assert summary.startswith("tone.wav: ") and "2.0 s of audio" in summary
    names = [Path(h).name for h in links(browser)]  # two-part suffixes: tone.score.pdf
    assert sorted(names) == sorted(f"tone{w.suffix}" for w in WRITERS.values())
    midi_url = next(h for h in links(browser) if h.endswith(".mid"))
    midi_path = tmp_path / "download.mid"
    midi_path.write_bytes(urllib.request.urlopen(midi_url, timeout=30).read())
    assert mido.MidiFile(midi_path).type in (0, 1)
    assert browser.find_elements(By.CSS_SELECTOR, "img[src*='tone.png']")  # the piano roll
    after = save_screenshot(browser, tmp_path, "serve-after.png")
    assert before.stat().st_size > 10_000 and after.stat().st_size > before.stat().st_size


def test_browser_records_from_the_microphone_and_transcribes(server, browser):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    open_page_and_upload(browser, server.url, Path("unused"))
    browser.find_element(By.CSS_SELECTOR, "button[aria-label='Record audio']").click()
    WebDriverWait(browser, 30).until(
        lambda d: d.find_element(By.CSS_SELECTOR, "button.record-button").is_displayed()
    )
    browser.find_element(By.CSS_SELECTOR, "button.record-button").click()
    time.sleep(1.5)  # 48 kHz 16-bit: well under the upload limit
    next(b for b in browser.find_elements(By.CSS_SELECTOR, "button.stop-button")
         if b.is_displayed()).click()  # fmt: skip
    time.sleep(1)
    browser.find_element(By.ID, "transcribe").click()
    text = wait_for_text(browser, " s of audio; transcribed in ")
    assert "audio.wav: " in text  # gradio names a recording audio.wav


def test_browser_shows_the_one_line_error_of_a_bad_file(server, browser, media):
    from selenium.webdriver.common.by import By

    open_page_and_upload(browser, server.url, media / "bad.wav")()
    browser.find_element(By.ID, "transcribe").click()
    wait_for_text(browser, "bad.wav: cannot decode audio (")


def test_browser_refuses_an_upload_over_the_limit(server, browser, media):
    open_page_and_upload(browser, server.url, media / "big.wav")()
    limit_kb = UPLOAD_LIMIT_MB * 1e6 / 1024  # gradio counts kilobytes of 1024 bytes
    wait_for_text(browser, f'exceed the maximum allowed size of {limit_kb:.1f} Kb: "big.wav"')


def test_simultaneous_requests_queue(server, media):
    from gradio_client import Client, handle_file

    client = Client(server.url, verbose=False, download_files=False)
    jobs = [client.submit(handle_file(str(media / "tone.wav")), choice, api_name="/transcribe")
            for choice in ([], ["piano"], [])]  # fmt: skip
    summaries = [job.result(timeout=240)[0] for job in jobs]
    assert all(s.startswith("**tone.wav: ") for s in summaries), summaries


def test_server_stops_cleanly_and_leaves_no_file(server):
    assert server.stop() == 0, "".join(server.lines)
    assert "mt3 serve: stopping" in "".join(server.lines)
    assert list(server.cwd.iterdir()) == []
    leftovers = [p for p in server.tmp.rglob("*") if p.is_file()]
    assert leftovers == [], leftovers
