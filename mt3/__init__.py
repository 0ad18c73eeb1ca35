"""mt3: multi-task multitrack music transcription (MT3) in JAX/Flax.

Modules: ``audio`` (loading, framing), ``spectrogram`` (log-mel in JAX), ``vocab`` and ``events``
(MT3's token codec), ``notes`` (Notes, MIDI, JSON), ``metrics`` (MT3's scores).
"""

from mt3.notes import Notes

__version__ = "0.1.0"
__all__ = ["Notes", "__version__"]
