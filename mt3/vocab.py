"""MT3's event codec and token vocabularies.

The codec numbers events of six types in a fixed order (shift, pitch, velocity, tie, program, drum);
the model sees ``codec index + 3`` because ids 0, 1 and 2 are PAD, EOS and UNK. After the codec's
classes come 100 unused "extra ids", and the embedding table is rounded up to a multiple of 128 rows
(docs/mt3.md §2.1–§2.3). Two configurations matter for the released checkpoints:

========== ============= ===== ============ ============ ===============
name       velocity bins ties  granularity  codec size   embedding rows
========== ============= ===== ============ ============ ===============
mt3        1             yes   full         1388         1536
ismir2021  127           no    flat         1514         1664
========== ============= ===== ============ ============ ===============

Everything here is plain Python/NumPy; nothing imports JAX.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np

from mt3.errors import Mt3Error

STEPS_PER_SECOND = 100
MAX_SHIFT_SECONDS = 10
MAX_SHIFT_STEPS = STEPS_PER_SECOND * MAX_SHIFT_SECONDS
NUM_PITCHES = 128
NUM_PROGRAMS = 128
PROGRAM_GRANULARITIES = ("flat", "midi_class", "full")

PAD_ID = 0
EOS_ID = 1
UNK_ID = 2
NUM_SPECIAL_TOKENS = 3
NUM_EXTRA_IDS = 100  # t5's DEFAULT_EXTRA_IDS: reserved, never produced by the codec.
EMBEDDING_ROW_MULTIPLE = 128

EVENT_TYPES = ("shift", "pitch", "velocity", "tie", "program", "drum")


class VocabError(Mt3Error, ValueError):
    """An unknown vocabulary name, a bad configuration or an event outside the codec."""


@dataclasses.dataclass(frozen=True)
class VocabConfig:
    """How notes become tokens: velocity resolution, tie sections and program granularity."""

    name: str = "mt3"
    num_velocity_bins: int = 1
    include_ties: bool = True
    program_granularity: str = "full"

    def __post_init__(self):
        if not 1 <= self.num_velocity_bins <= 127:
            raise VocabError(f"num_velocity_bins must be in 1..127, got {self.num_velocity_bins}")
        if self.program_granularity not in PROGRAM_GRANULARITIES:
            raise VocabError(
                f"program_granularity must be one of {', '.join(PROGRAM_GRANULARITIES)}, "
                f"got {self.program_granularity!r}"
            )


VOCAB_CONFIGS = {
    "mt3": VocabConfig("mt3", num_velocity_bins=1, include_ties=True, program_granularity="full"),
    "ismir2021": VocabConfig(
        "ismir2021", num_velocity_bins=127, include_ties=False, program_granularity="flat"
    ),
}


def get_vocab_config(name: str) -> VocabConfig:
    """The named vocabulary configuration ('mt3' or 'ismir2021')."""
    try:
        return VOCAB_CONFIGS[name]
    except KeyError:
        raise VocabError(
            f"unknown vocabulary {name!r}; choose one of {', '.join(VOCAB_CONFIGS)}"
        ) from None


class Vocabulary:
    """Model-id layout of one :class:`VocabConfig`.

    ``first_id[t]`` is the model id of the smallest value of event type ``t``; ``num_values[t]`` is
    how many values the type has. A model id ``i`` in ``[first_id[t], first_id[t] + num_values[t])``
    means event ``(t, i - first_id[t])``; shift values start at 0 although shift 0 never occurs.
    """

    def __init__(self, config: VocabConfig):
        self.config = config
        self.num_values = {
            "shift": MAX_SHIFT_STEPS + 1,
            "pitch": NUM_PITCHES,
            "velocity": config.num_velocity_bins + 1,
            "tie": 1,
            "program": NUM_PROGRAMS,
            "drum": NUM_PITCHES,
        }
        self.first_id = {}
        next_id = NUM_SPECIAL_TOKENS
        for event_type in EVENT_TYPES:
            self.first_id[event_type] = next_id
            next_id += self.num_values[event_type]
        self.num_classes = next_id - NUM_SPECIAL_TOKENS  # codec size
        self.base_size = next_id  # ids below this are specials or events
        self.vocab_size = self.base_size + NUM_EXTRA_IDS
        self.num_embeddings = EMBEDDING_ROW_MULTIPLE * math.ceil(
            self.vocab_size / EMBEDDING_ROW_MULTIPLE
        )
        self.tie_id = self.first_id["tie"]
        # For vectorised decoding: the event type index of every id below base_size (-1: special).
        self._type_of_id = np.full(self.base_size, -1, dtype=np.int8)
        for index, event_type in enumerate(EVENT_TYPES):
            first = self.first_id[event_type]
            self._type_of_id[first : first + self.num_values[event_type]] = index

    @property
    def name(self) -> str:
        return self.config.name

    def event_id(self, event_type: str, value: int) -> int:
        """The model id of one event; raises VocabError when the value is out of range."""
        if not 0 <= value < self.num_values[event_type]:
            raise VocabError(
                f"{event_type} value {value} outside 0..{self.num_values[event_type] - 1}"
            )
        return self.first_id[event_type] + value

    def id_range(self, event_type: str) -> tuple[int, int]:
        """Inclusive (first, last) model ids of an event type."""
        first = self.first_id[event_type]
        return first, first + self.num_values[event_type] - 1

    def decode_id(self, token_id: int) -> tuple[str, int] | None:
        """(event type, value) of a model id, or None for PAD/EOS/UNK, extra ids and unknown ids."""
        if not NUM_SPECIAL_TOKENS <= token_id < self.base_size:
            return None
        event_type = EVENT_TYPES[self._type_of_id[token_id]]
        return event_type, token_id - self.first_id[event_type]

    def event_types_of(self, ids: np.ndarray) -> np.ndarray:
        """Event type index (into EVENT_TYPES) per id; -1 for ids that are not codec events."""
        ids = np.asarray(ids)
        valid = (ids >= NUM_SPECIAL_TOKENS) & (ids < self.base_size)
        out = np.full(ids.shape, -1, dtype=np.int8)
        out[valid] = self._type_of_id[ids[valid]]
        return out

    def velocity_to_bin(self, velocity: int) -> int:
        """MT3's quantisation: 0 stays 0, otherwise ceil(bins * velocity / 127)."""
        return velocity_to_bin(velocity, self.config.num_velocity_bins)

    def bin_to_velocity(self, velocity_bin: int) -> int:
        """MT3's inverse: 0 stays 0, otherwise int(127 * bin / bins)."""
        if velocity_bin == 0:
            return 0
        return int(127 * velocity_bin / self.config.num_velocity_bins)

    def describe(self, token_id: int) -> str:
        """Human-readable name of one id, e.g. 'shift 50', 'pitch 60', 'EOS'."""
        specials = {PAD_ID: "PAD", EOS_ID: "EOS", UNK_ID: "UNK"}
        if token_id in specials:
            return specials[token_id]
        event = self.decode_id(token_id)
        if event is None:
            return f"invalid {token_id}"
        return f"{event[0]} {event[1]}"


def velocity_to_bin(velocity, num_velocity_bins: int):
    """ceil(bins * v / 127) for v > 0, else 0; works on ints and integer arrays."""
    velocity = np.asarray(velocity, dtype=np.int64)
    bins = -((-num_velocity_bins * velocity) // 127)  # exact integer ceil
    result = np.where(velocity == 0, 0, bins)
    return int(result) if result.ndim == 0 else result


def map_program(program, granularity: str):
    """The program MT3 uses for a granularity: flat -> 0, midi_class -> 8 * (p // 8), full -> p."""
    program = np.asarray(program, dtype=np.int64)
    if granularity == "flat":
        result = np.zeros_like(program)
    elif granularity == "midi_class":
        result = 8 * (program // 8)
    elif granularity == "full":
        result = program
    else:
        raise VocabError(f"unknown program granularity {granularity!r}")
    return int(result) if result.ndim == 0 else result


_VOCABULARIES: dict[VocabConfig, Vocabulary] = {}


def vocabulary(config: VocabConfig | str) -> Vocabulary:
    """The (cached) :class:`Vocabulary` of a config or config name."""
    if isinstance(config, str):
        config = get_vocab_config(config)
    if config not in _VOCABULARIES:
        _VOCABULARIES[config] = Vocabulary(config)
    return _VOCABULARIES[config]


# General MIDI instrument families (0-based programs, eight per family), for instrument control.
INSTRUMENT_FAMILIES = {
    name: range(8 * index, 8 * index + 8)
    for index, name in enumerate(
        (
            "piano", "chromatic_percussion", "organ", "guitar", "bass", "strings", "ensemble",
            "brass", "reed", "pipe", "synth_lead", "synth_pad", "synth_effects", "ethnic",
            "percussive", "sound_effects",
        )
    )
}  # fmt: skip


def parse_instruments(spec: str) -> tuple[frozenset[int], bool]:
    """'piano,bass,drums' / '0,33,40-47,drums' -> (allowed programs, drums allowed).

    Names are General MIDI families (piano, guitar, bass, strings, ensemble, brass, reed, pipe,
    organ, synth_lead, ...) or 'drums'; numbers are 0-based GM programs, alone or as ranges.
    """
    programs: set[int] = set()
    drums = False
    for item in (part.strip().lower() for part in spec.split(",")):
        if not item:
            continue
        if item in ("drums", "drum", "percussion_kit"):
            drums = True
        elif item in INSTRUMENT_FAMILIES:
            programs.update(INSTRUMENT_FAMILIES[item])
        elif item.replace("-", "").isdigit() and item.count("-") <= 1:
            low, _, high = item.partition("-")
            low, high = int(low), int(high or low)
            if low > high:
                raise VocabError(f"program range {item!r} is reversed; write {high}-{low}")
            if not 0 <= low <= high <= 127:
                raise VocabError(f"program range {item!r} outside 0..127")
            programs.update(range(low, high + 1))
        else:
            families = ", ".join(INSTRUMENT_FAMILIES)
            raise VocabError(
                f"unknown instrument {item!r}; use GM program numbers (0-127, ranges like 40-47), "
                f"'drums', or a family: {families}"
            )
    if not programs and not drums:
        raise VocabError(f"no instruments in {spec!r}")
    return frozenset(programs), drums
