"""mt3: multi-task multitrack music transcription (MT3) in JAX/Flax.

    import mt3
    model = mt3.load_model("converted/mt3")          # see `mt3 convert-checkpoint`
    notes = mt3.transcribe("song.mp3", model)        # Notes: start, end, pitch, program, ...

Modules: ``audio`` (loading, framing), ``spectrogram`` (log-mel in JAX), ``vocab`` and ``events``
(MT3's token codec), ``notes`` (Notes, MIDI, JSON), ``metrics`` (MT3's scores), ``config`` (the
variants and the training config tree), ``model`` (the network, decoding, the model store,
checkpoint import), ``infer`` (long-audio transcription), ``outputs`` (the writers by format).
docs/architecture.md shows how they connect.
"""

from mt3.notes import Notes

__version__ = "0.1.0"
__all__ = ["Notes", "load_model", "transcribe", "__version__"]


def load_model(path):
    """The network of a model folder (`mt3 convert-checkpoint`) or of a training run (its latest
    checkpoint): parameters only, on one device (mt3.model.store)."""
    from mt3.model.store import load_model as load

    return load(path)


def transcribe(
    audio,
    model,
    *,
    batch_size: int | None = None,
    instruments: str | None = None,
    context: str = "none",
) -> Notes:
    """Notes of an audio file (any length and format) or a 16 kHz mono float32 array.

    ``context='ties'`` opens each segment with the notes still sounding from the one before
    (``mt3.infer.TranscribeOptions``). For many files, build one ``mt3.infer.Transcriber`` and
    reuse it: it keeps the compiled model.
    """
    from mt3.infer import TranscribeOptions, Transcriber

    options = TranscribeOptions(batch_size=batch_size, instruments=instruments, context=context)
    return Transcriber(model, options).transcribe(audio).notes
