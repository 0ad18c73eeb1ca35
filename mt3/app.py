"""The local web app (``mt3 serve``): upload or record audio, pick instruments, get the notes back.

One model is loaded at start-up and serves every request; a ``Transcriber`` is compiled per set
of allowed instruments (the instrument mask is part of the compiled program) and the last few are
kept. Requests queue: one transcription runs at a time, the others wait with their place shown.
The page shows the piano roll, the original and the transcription rendered with a General MIDI
soundfont, and offers a download of every format in ``mt3.outputs.WRITERS``.

Everything the app writes (uploads, results) goes into one temporary folder that is removed when
the server stops; nothing is written into the user's folders. Gradio is an optional extra
(``pip install -e '.[serve]'``; ``scripts/setup.sh`` installs it) and is imported only here.
"""

from __future__ import annotations

import collections
import concurrent.futures
import dataclasses
import os
import shutil
import signal
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

# mt3.infer (and with it JAX) is imported where it is used, so `mt3 --help` stays quick.
from mt3.audio import SAMPLE_RATE, audio_info
from mt3.errors import Mt3Error
from mt3.outputs import WRITERS, write_outputs
from mt3.vocab import INSTRUMENT_FAMILIES, parse_instruments

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 7860
LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")
DEFAULT_MAX_UPLOAD_MB = 100.0  # about 10 min of 44.1 kHz stereo wav, hours of mp3
BYTES_PER_MB = 1_000_000
MAX_TRANSCRIBERS = 4  # compiled instrument sets kept; each holds one compiled program
MAX_QUEUE = 32  # waiting requests beyond this are told the queue is full
RESULT_LIFETIME_SECONDS = 3600  # a request's files are deleted this long after it finished
INSTRUMENT_CHOICES = ("drums", *INSTRUMENT_FAMILIES)
REQUIRED_FORMATS = ("midi", "json", "png", "wav")  # the page needs these; others are optional


class ServeError(Mt3Error, ValueError):
    """A bad ``mt3 serve`` option, a missing extra, or a request the app refuses."""


@dataclasses.dataclass(frozen=True)
class ServeOptions:
    """host/port: where to listen; max_upload_mb: the largest audio file accepted (10^6 bytes)."""

    host: str = DEFAULT_HOST
    port: int = DEFAULT_PORT
    max_upload_mb: float = DEFAULT_MAX_UPLOAD_MB
    batch_size: int = 8

    def __post_init__(self):
        if not 1 <= self.port <= 65535:
            raise ServeError(f"--port {self.port}: give a port number from 1 to 65535")
        if not self.max_upload_mb > 0:
            raise ServeError(f"--max-upload-mb {self.max_upload_mb}: must be more than 0")
        if self.batch_size < 1:
            raise ServeError(f"--batch-size {self.batch_size}: must be at least 1")

    @property
    def max_upload_bytes(self) -> int:
        return int(self.max_upload_mb * BYTES_PER_MB)


def resolve_checkpoint(checkpoint: str | os.PathLike | None) -> Path:
    """The model folder or training run to serve (the one place that decides it)."""
    if checkpoint is None:
        raise ServeError(
            "no --checkpoint given: convert Magenta's released weights with "
            "`mt3 convert-checkpoint`, or train one with `mt3 train`"
        )
    return Path(checkpoint)


@dataclasses.dataclass(frozen=True)
class Result:
    """What one request produced: the written file of each format, and a one-line summary."""

    files: dict[str, Path]
    summary: str
    notes: int
    duration_seconds: float


def instruments_spec(choices) -> str | None:
    """Ticked instrument names -> a ``TranscribeOptions.instruments`` text (None: any)."""
    names = sorted({str(c) for c in choices or ()})
    if not names:
        return None
    spec = ",".join(names)
    parse_instruments(spec)  # a bad name is a VocabError before any work
    return spec


def describe(result, seconds_taken: float, name: str) -> str:
    """``song.wav: 812 notes of 3 instruments (...) in 10.0 s of audio; transcribed in 3.1 s``."""
    import pretty_midi

    notes = result.notes
    kinds = sorted({(bool(d), 0 if d else int(p)) for p, d in zip(notes.program, notes.is_drum)})
    labels = [
        "drums" if drum else pretty_midi.program_to_instrument_name(program)
        for drum, program in kinds
    ]
    what = f"{len(notes)} notes"
    if labels:
        shown = ", ".join(labels[:6]) + (", ..." if len(labels) > 6 else "")
        what += f" of {len(labels)} instrument{'s' * (len(labels) > 1)} ({shown})"
    return (
        f"{name}: {what} in {result.duration_seconds:.1f} s of audio; "
        f"transcribed in {seconds_taken:.1f} s"
    )


class TranscriptionService:
    """The model, its compiled transcribers and the result folder: the state behind the page.

    ``run`` does one request; it is what the page calls and what the tests call directly.
    """

    def __init__(self, model, workdir: str | os.PathLike, options: ServeOptions = ServeOptions()):
        self.model = model
        self.options = options
        self.results = Path(workdir)
        self.results.mkdir(parents=True, exist_ok=True)
        self._transcribers: collections.OrderedDict = collections.OrderedDict()
        self._lock = threading.Lock()  # the queue runs one request at a time; this makes sure

    def transcriber(self, instruments: str | None, status=None):
        """The mt3.infer.Transcriber for an instrument set; a new one is compiled at once on a
        second of silence (``status(text, 0)`` is told first), and the last few are kept."""
        from mt3.infer import TranscribeOptions, Transcriber

        if instruments not in self._transcribers:
            if status is not None:
                status(f"compiling the model for {instruments or 'any instrument'} (first use)", 0)
            options = TranscribeOptions(batch_size=self.options.batch_size, instruments=instruments)
            transcriber = Transcriber(self.model, options)
            # In a thread of its own, whose context is empty: gradio's track_tqdm would show
            # this second of silence's bar in place of the status line.
            with concurrent.futures.ThreadPoolExecutor(1) as pool:
                pool.submit(transcriber.transcribe, np.zeros(SAMPLE_RATE, np.float32)).result()
            self._transcribers[instruments] = transcriber
            while len(self._transcribers) > MAX_TRANSCRIBERS:
                self._transcribers.popitem(last=False)
        self._transcribers.move_to_end(instruments)
        return self._transcribers[instruments]

    def warm_up(self) -> None:
        """Compile the default transcriber now, so that the first user waits less."""
        self.transcriber(None)

    def check_upload(self, audio: str | os.PathLike | None) -> Path:
        """The uploaded file, refused (ServeError/AudioError naming it) before any work."""
        if not audio:
            raise ServeError("no audio: upload a file or record one, then press Transcribe")
        path = Path(audio)
        size = path.stat().st_size
        if size > self.options.max_upload_bytes:
            raise ServeError(
                f"{path.name}: {size / BYTES_PER_MB:.1f} MB is over this server's upload limit "
                f"of {self.options.max_upload_mb:g} MB; send a shorter or compressed file "
                "(or start the server with a larger --max-upload-mb)"
            )
        audio_info(path)
        return path

    def run(
        self, audio: str | os.PathLike | None, instruments=(), *, progress=False, status=None
    ) -> Result:
        """Transcribe one uploaded file into a fresh folder; every format of WRITERS is written
        (a format beyond ``REQUIRED_FORMATS`` that fails with an Mt3Error is left out and the
        summary says why). ``progress``: show the transcription's tqdm bar; ``status(text,
        fraction done)`` hears each stage. Errors name the upload by its file name, not the
        server's path."""
        name = Path(audio).name if audio else "audio"
        try:
            with self._lock:
                return self._run(audio, instruments, progress, status or (lambda text, done: None))
        except Mt3Error as error:
            raise type(error)(str(error).replace(str(audio), name)) from error

    def _run(self, audio, instruments, progress, status) -> Result:
        path = self.check_upload(audio)
        spec = instruments_spec(instruments)
        self._sweep()
        started = time.perf_counter()
        transcriber = self.transcriber(spec, status)
        compiled = time.perf_counter() - started
        status(f"transcribing {path.name}", 0)
        started = time.perf_counter()
        transcription = transcriber.transcribe(path, progress=progress)
        taken = time.perf_counter() - started
        status("writing " + ", ".join(WRITERS), 1)
        folder = Path(tempfile.mkdtemp(prefix="result-", dir=self.results))
        base = folder / (path.stem or "audio")
        files, skipped = {}, []
        for fmt in WRITERS:
            try:
                (written,) = write_outputs(transcription, base, [fmt], title=path.name)
            except Mt3Error as error:
                if fmt in REQUIRED_FORMATS:
                    raise
                skipped.append(f"{fmt} ({error})")
                continue
            files[fmt] = written
        summary = describe(transcription, taken, path.name)
        if compiled > 1:
            summary += f" (after compiling for these instruments: {compiled:.1f} s)"
        if skipped:
            summary += "; not written: " + "; ".join(skipped)
        return Result(files, summary, len(transcription.notes), transcription.duration_seconds)

    def _sweep(self) -> None:
        """Delete result folders of requests that finished long ago (a server runs for days)."""
        cutoff = time.time() - RESULT_LIFETIME_SECONDS
        for folder in self.results.glob("result-*"):
            if folder.stat().st_mtime < cutoff:
                shutil.rmtree(folder, ignore_errors=True)


PAGE_INTRO = """\
# mt3: music transcription
Upload a recording (wav, flac, ogg, mp3; up to {limit:g} MB) or record one with your microphone,
choose the instruments to allow (none ticked: any instrument, as MT3), then press **Transcribe**.
You get the notes as a piano roll, the transcription played back with a General MIDI soundfont
beside the original, and the files to download.

Model: `{model}` ({variant} variant). Requests are queued; one transcription runs at a time.
"""


def build_app(service: TranscriptionService, model_name: str):
    """The gradio page for ``service``; returns an unlaunched ``gradio.Blocks``."""
    import gradio as gr

    def transcribe(audio, instruments, progress=gr.Progress(track_tqdm=True)):  # noqa: B008
        try:
            status = lambda text, done: progress(done, desc=text)
            result = service.run(audio, instruments, progress=True, status=status)
        except Mt3Error as error:
            raise gr.Error(str(error), print_exception=False) from error
        except OSError as error:  # as the command line reports it: the file and the reason
            name = Path(error.filename).name if error.filename else ""
            raise gr.Error(f"{name}: {error.strerror}" if name else str(error)) from error
        print(result.summary, flush=True)
        files = {fmt: str(path) for fmt, path in result.files.items()}
        return f"**{result.summary}**", files["png"], audio, files["wav"], list(files.values())

    config = service.model.config
    choices = [(name.replace("_", " "), name) for name in INSTRUMENT_CHOICES]
    with gr.Blocks(title="mt3", delete_cache=(600, RESULT_LIFETIME_SECONDS)) as page:
        gr.Markdown(
            PAGE_INTRO.format(
                limit=service.options.max_upload_mb, model=model_name, variant=config.name
            )
        )
        with gr.Row():
            with gr.Column(scale=1):
                audio = gr.Audio(
                    sources=["upload", "microphone"], type="filepath", label="Audio", format=None
                )
                instruments = gr.CheckboxGroup(
                    choices, label="Instruments to allow", info="none ticked: any instrument"
                )
                button = gr.Button("Transcribe", variant="primary", elem_id="transcribe")
            with gr.Column(scale=2):
                summary = gr.Markdown(elem_id="summary")
                roll = gr.Image(label="Piano roll", type="filepath", interactive=False)
                with gr.Row():
                    original = gr.Audio(label="Original", interactive=False)
                    rendered = gr.Audio(label="Transcription (General MIDI)", interactive=False)
                downloads = gr.File(
                    label="Downloads", file_count="multiple", interactive=False, elem_id="downloads"
                )
        button.click(
            transcribe,
            inputs=[audio, instruments],
            outputs=[summary, roll, original, rendered, downloads],
            api_name="transcribe",
            concurrency_limit=1,
        )
    return page


def serve(
    checkpoint: str | os.PathLike | None,
    options: ServeOptions = ServeOptions(),
    *,
    variant: str | None = None,
) -> None:
    """Load the model, compile it, and serve the page until Ctrl-C or SIGTERM."""
    import importlib.util

    if importlib.util.find_spec("gradio") is None:
        raise ServeError(
            "mt3 serve needs gradio: run `bash scripts/setup.sh` or `pip install -e '.[serve]'`"
        )
    from mt3.infer import check_variant
    from mt3.model.store import load_model

    checkpoint = resolve_checkpoint(checkpoint)
    check_address(options)  # before the minutes of loading and compiling
    model = load_model(checkpoint)
    check_variant(model.config, variant, checkpoint)
    root = Path(tempfile.mkdtemp(prefix="mt3-serve-"))
    previous = {k: os.environ.get(k) for k in ("GRADIO_TEMP_DIR", "GRADIO_ANALYTICS_ENABLED")}
    # Gradio reads these when it is first imported (in build_app): its uploads and caches then
    # land in our folder, which goes when the server stops.
    os.environ["GRADIO_TEMP_DIR"] = str(root / "uploads")
    os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"
    stop = signal.signal(signal.SIGTERM, _interrupt)
    try:
        service = TranscriptionService(model, root / "results", options)
        print(f"mt3 serve: compiling {checkpoint} ...", flush=True)
        service.warm_up()
        page = build_app(service, checkpoint.name)
        page.queue(max_size=MAX_QUEUE, default_concurrency_limit=1)
        _launch(page, options)
    finally:
        signal.signal(signal.SIGTERM, stop)
        shutil.rmtree(root, ignore_errors=True)
        for key, value in previous.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def check_address(options: ServeOptions) -> None:
    """A ServeError now if nothing can listen on ``--host``/``--port`` (in use, not this
    machine's address)."""
    import socket

    try:
        family = socket.getaddrinfo(options.host, options.port, type=socket.SOCK_STREAM)[0][0]
        with socket.socket(family, socket.SOCK_STREAM) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            probe.bind((options.host, options.port))
    except OSError as error:
        reason = error.strerror or str(error)
        raise ServeError(
            f"--host {options.host} --port {options.port}: cannot listen there ({reason}); "
            "pick another port with --port"
        ) from error


def _interrupt(signum, frame):
    raise KeyboardInterrupt  # SIGTERM stops the server like Ctrl-C: the temporary folder goes too


def _launch(page, options: ServeOptions) -> None:
    try:
        page.launch(
            server_name=options.host,
            server_port=options.port,
            max_file_size=options.max_upload_bytes,
            prevent_thread_lock=True,
            quiet=True,
            show_error=True,
            footer_links=[],
        )
    except OSError as error:
        raise ServeError(
            f"--host {options.host} --port {options.port}: cannot listen there ({error}); "
            "pick another port with --port"
        ) from error
    print(f"mt3 serve: open http://{options.host}:{page.server_port} (Ctrl-C to stop)", flush=True)
    if options.host not in LOOPBACK_HOSTS:
        print(
            f"mt3 serve: listening on {options.host}: anyone who can reach this machine can use "
            "the page (it has no login)",
            flush=True,
        )
    try:
        while True:
            time.sleep(0.5)
    except KeyboardInterrupt:
        print("mt3 serve: stopping", flush=True)
    finally:
        page.close()
