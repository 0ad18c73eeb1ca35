"""Autoregressive decoding as pure functions of a ``tokens_to_logits`` callback.

``tokens_to_logits(tokens [N], cache, index, limit) -> (logits float32 [N, V], cache)`` scores
the next token for every row given the token at decoder position ``index``; ``cache`` is any
pytree whose leaves have the batch (N) as their leading axis; ``limit`` is a static bound on the
positions decoded so far (index < limit), so a cached decoder only reads that much of its cache.
The steps run in phases of ``phase_length`` positions, each a ``lax.while_loop`` with its own
static ``limit``: a batch of segments decodes in one jitted call, reads a cache slice that grows
with the output instead of the whole 1024 positions at every step, and stops as soon as every row
is done or at ``max_length`` tokens.

Three searches:

- ``beam_search(num_beams=1)``: what MT3 actually runs (t5x ``beam_search`` with one beam and
  brevity penalty alpha = 0.6, docs/mt3.md §7). Each step keeps the best non-EOS continuation alive
  and files "prefix + EOS" as a finished candidate whenever EOS is among the two best tokens, scored
  log p / ((5 + length) / 6)^alpha. It stops when no live sequence can beat the finished one, and
  returns the best finished sequence (the live one if none finished). So it can end where EOS was
  only second-best, and agrees with argmax decoding otherwise.
- ``greedy_decode``: plain argmax until EOS.
- ``beam_search(num_beams=N)``: the same procedure with N beams (2N candidates per step); it stops
  once the best live sequence cannot beat the worst finished one.

``logit_bias`` [V] is added to the logits before every choice: a large negative value forbids a
token, which is how instrument restrictions work (``instrument_logit_bias``).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from mt3.errors import Mt3Error
from mt3.vocab import EOS_ID, PAD_ID, Vocabulary

NEG_INF = -1.0e7  # t5x's "minus infinity" for beam scores
FORBIDDEN = -1.0e9  # logit bias of a forbidden token
DECODE_MODES = ("mt3", "greedy", "beam")

TokensToLogits = Callable[[jax.Array, Any, jax.Array, int], tuple[jax.Array, Any]]
PHASE_LENGTH = 128


def phase_limits(max_length: int, phase_length: int) -> list[int]:
    """Static upper bounds of the decoding phases: 128, 256, ..., max_length."""
    return [
        min(end, max_length) for end in range(phase_length, max_length + phase_length, phase_length)
    ]


class DecodeError(Mt3Error, ValueError):
    """Bad decoding options."""


@dataclasses.dataclass(frozen=True)
class DecodeOptions:
    """mode 'mt3' = t5x beam search with one beam (MT3's default); 'greedy' = argmax;
    'beam' = beam search with ``num_beams``."""

    mode: str = "mt3"
    num_beams: int = 4
    alpha: float = 0.6
    max_length: int | None = None  # ids per segment, EOS included (None: the model's limit)

    def __post_init__(self):
        if self.mode not in DECODE_MODES:
            modes = ", ".join(DECODE_MODES)
            raise DecodeError(f"decode mode must be one of {modes}, got {self.mode!r}")
        if self.num_beams < 1 or (self.max_length is not None and self.max_length < 1):
            raise DecodeError("the number of beams and the token limit must be at least 1")


def decode(tokens_to_logits, cache, batch_size: int, options: DecodeOptions, logit_bias=None):
    """Token ids int32 [batch, max_length] (EOS kept, PAD after it) with the chosen search."""
    if options.mode == "greedy":
        return greedy_decode(
            tokens_to_logits, cache, batch_size, options.max_length, logit_bias=logit_bias
        )
    beams = 1 if options.mode == "mt3" else options.num_beams
    tokens, _ = beam_search(
        tokens_to_logits, cache, batch_size, options.max_length, num_beams=beams,
        alpha=options.alpha, logit_bias=logit_bias,
    )  # fmt: skip
    return tokens


def greedy_decode(
    tokens_to_logits: TokensToLogits,
    cache,
    batch_size: int,
    max_length: int,
    *,
    eos_id: int = EOS_ID,
    logit_bias=None,
    phase_length: int = PHASE_LENGTH,
) -> jax.Array:
    """Argmax decoding from start token 0; rows stop after EOS. Returns int32 [B, max_length]."""

    def phase(limit):
        def cond(state):
            index, _, done, _ = state
            return (index < limit) & ~jnp.all(done)

        def body(state):
            index, tokens, done, cache = state
            logits, cache = tokens_to_logits(tokens[:, index], cache, index, limit)
            if logit_bias is not None:
                logits = logits + logit_bias
            chosen = jnp.where(done, PAD_ID, jnp.argmax(logits, axis=-1).astype(jnp.int32))
            tokens = jax.lax.dynamic_update_slice(tokens, chosen[:, None], (0, index + 1))
            return index + 1, tokens, done | (chosen == eos_id), cache

        return cond, body

    tokens = jnp.zeros((batch_size, max_length + 1), jnp.int32)
    state = (jnp.int32(0), tokens, jnp.zeros(batch_size, bool), cache)
    for limit in phase_limits(max_length, phase_length):
        state = jax.lax.while_loop(*phase(limit), state)
    return state[1][:, 1:]


def brevity_penalty(alpha: float, length) -> jax.Array:
    return jnp.power((5.0 + length) / 6.0, alpha)


def _take_beams(x: jax.Array, indices: jax.Array) -> jax.Array:
    """x [B, beams, ...] and indices [B, k] -> x[b, indices[b, j], ...] as [B, k, ...]."""
    expanded = indices.reshape(*indices.shape, *([1] * (x.ndim - 2)))
    return jnp.take_along_axis(x, expanded, axis=1)


def _take_flat_beams(x: jax.Array, indices: jax.Array) -> jax.Array:
    """The same for a cache leaf whose beams are folded into the batch axis: [B * beams, ...]."""
    shaped = x.reshape(indices.shape[0], -1, *x.shape[1:])
    return _take_beams(shaped, indices).reshape(-1, *x.shape[1:])


def beam_search(
    tokens_to_logits: TokensToLogits,
    cache,
    batch_size: int,
    max_length: int,
    *,
    num_beams: int = 1,
    alpha: float = 0.6,
    eos_id: int = EOS_ID,
    logit_bias=None,
    phase_length: int = PHASE_LENGTH,
) -> tuple[jax.Array, jax.Array]:
    """t5x-style beam search (module docstring). ``cache`` leaves have batch size B and are
    repeated per beam here. Returns the best sequence int32 [B, max_length] and its score [B]."""
    beams, length = num_beams, max_length + 1  # position 0 holds the start token
    cache = jax.tree.map(lambda x: jnp.repeat(x, beams, axis=0), cache)
    min_penalty = brevity_penalty(alpha, length)
    state = dict(
        index=jnp.int32(0),
        live_logprobs=jnp.tile(jnp.array([0.0] + [NEG_INF] * (beams - 1)), (batch_size, 1)),
        live_seqs=jnp.zeros((batch_size, beams, length), jnp.int32),
        finished_scores=jnp.full((batch_size, beams), NEG_INF),
        finished_seqs=jnp.zeros((batch_size, beams, length), jnp.int32),
        finished_flags=jnp.zeros((batch_size, beams), bool),
        cache=cache,
    )

    def searching(state):
        best_live = state["live_logprobs"][:, :1] / min_penalty
        worst_finished = jnp.min(state["finished_scores"], axis=1, keepdims=True)
        worst_finished = jnp.where(state["finished_flags"], worst_finished, NEG_INF)
        return ~jnp.all(worst_finished > best_live)

    def body(state, limit):
        index = state["index"]
        last = state["live_seqs"][:, :, index].reshape(-1)
        logits, cache = tokens_to_logits(last, state["cache"], index, limit)
        if logit_bias is not None:
            logits = logits + logit_bias
        vocab = logits.shape[-1]
        log_probs = jax.nn.log_softmax(logits.astype(jnp.float32)).reshape(batch_size, beams, vocab)
        log_probs = log_probs + state["live_logprobs"][:, :, None]
        top_log_probs, top_indices = jax.lax.top_k(log_probs.reshape(batch_size, -1), 2 * beams)
        top_beams = top_indices // vocab
        top_ids = (top_indices % vocab).astype(jnp.int32)
        top_seqs = _take_beams(state["live_seqs"], top_beams)
        top_seqs = jax.lax.dynamic_update_slice(top_seqs, top_ids[:, :, None], (0, 0, index + 1))
        newly_finished = top_ids == eos_id

        # Live: the best `beams` candidates that did not just end.
        alive_log_probs, alive = jax.lax.top_k(top_log_probs + newly_finished * NEG_INF, beams)
        live_seqs = _take_beams(top_seqs, alive)
        if beams == 1:  # the only live beam always continues itself: no cache copy
            live_cache = cache
        else:
            parents = _take_beams(top_beams, alive)
            live_cache = jax.tree.map(lambda x: _take_flat_beams(x, parents), cache)

        # Finished: merge the new "prefix + EOS" candidates, length-normalised, with the old.
        scores = top_log_probs / brevity_penalty(alpha, index + 1) + (~newly_finished) * NEG_INF
        all_scores = jnp.concatenate([state["finished_scores"], scores], axis=1)
        all_seqs = jnp.concatenate([state["finished_seqs"], top_seqs], axis=1)
        all_flags = jnp.concatenate([state["finished_flags"], newly_finished], axis=1)
        finished_scores, best = jax.lax.top_k(all_scores, beams)
        return dict(
            index=index + 1,
            live_logprobs=alive_log_probs,
            live_seqs=live_seqs,
            finished_scores=finished_scores,
            finished_seqs=_take_beams(all_seqs, best),
            finished_flags=_take_beams(all_flags, best),
            cache=live_cache,
        )

    for limit in phase_limits(max_length, phase_length):
        state = jax.lax.while_loop(
            lambda state, limit=limit: (state["index"] < limit) & searching(state),
            lambda state, limit=limit: body(state, limit),
            state,
        )
    any_finished = jnp.any(state["finished_flags"], axis=1)
    seqs = jnp.where(any_finished[:, None], state["finished_seqs"][:, 0], state["live_seqs"][:, 0])
    scores = jnp.where(any_finished, state["finished_scores"][:, 0], state["live_logprobs"][:, 0])
    return seqs[:, 1:], scores


# ----------------------------------------------------------------------------------------------
# Instrument restrictions


def instrument_logit_bias(
    vocab: Vocabulary, num_rows: int, programs, allow_drums: bool
) -> np.ndarray:
    """float32 [num_rows]: 0 for allowed tokens, FORBIDDEN for program tokens outside
    ``programs`` and for drum tokens when drums are not allowed. With no melodic program allowed,
    pitch tokens are forbidden too (they would play the previous program)."""
    bias = np.zeros(num_rows, np.float32)
    first, last = vocab.id_range("program")
    allowed = np.zeros(last - first + 1, bool)
    allowed[list(programs)] = True
    bias[first : last + 1][~allowed] = FORBIDDEN
    if not allow_drums:
        first_drum, last_drum = vocab.id_range("drum")
        bias[first_drum : last_drum + 1] = FORBIDDEN
    if not allowed.any():
        first_pitch, last_pitch = vocab.id_range("pitch")
        bias[first_pitch : last_pitch + 1] = FORBIDDEN
    return bias


# ----------------------------------------------------------------------------------------------
# Continuous batching: one search per row, rows refilled as they finish


class Rows(NamedTuple):
    """The search state of B rows, each decoding its own segment (``row_steps``).

    ``tokens`` [B, max_length + 1]: the live sequence after the start token 0; ``index`` [B]: the
    position of each row's last token; ``active`` [B]: still searching; ``live_logprob`` [B];
    ``finished_score`` [B] and ``finished_end`` [B]: the best "prefix + EOS" candidate so far, as
    its score and the position of its EOS (0: none yet). With one beam the live sequence only
    grows, so a finished candidate is always ``tokens[1:finished_end] + [EOS]``. ``forced`` [B]:
    the first so many ids of a row are given (``start_rows``' prefix), not searched.
    """

    tokens: jax.Array
    index: jax.Array
    active: jax.Array
    live_logprob: jax.Array
    finished_score: jax.Array
    finished_end: jax.Array
    forced: jax.Array
    cache: Any


def empty_rows(batch_size: int, max_length: int, cache) -> Rows:
    """B free rows (nothing active) around a decoder cache of batch size B."""
    return Rows(
        tokens=jnp.zeros((batch_size, max_length + 1), jnp.int32),
        index=jnp.zeros(batch_size, jnp.int32),
        active=jnp.zeros(batch_size, bool),
        live_logprob=jnp.zeros(batch_size, jnp.float32),
        finished_score=jnp.full(batch_size, NEG_INF, jnp.float32),
        finished_end=jnp.zeros(batch_size, jnp.int32),
        forced=jnp.zeros(batch_size, jnp.int32),
        cache=cache,
    )


def start_rows(rows: Rows, slots: jax.Array, cache, prefix=None, prefix_length=None) -> Rows:
    """Rows ``slots`` [A] start new segments (a slot equal to B is ignored); ``cache`` holds
    their encoder keys/values already. ``prefix`` [A, P] with ``prefix_length`` [A]: ids every
    row must begin with (e.g. a tie section), kept whatever the model prefers."""

    def put(x, value):
        return x.at[slots].set(value, mode="drop")

    tokens = jnp.zeros((slots.shape[0], rows.tokens.shape[1]), jnp.int32)
    forced = jnp.zeros(slots.shape[0], jnp.int32)
    if prefix is not None:
        width = min(prefix.shape[1], rows.tokens.shape[1] - 1)
        tokens = tokens.at[:, 1 : 1 + width].set(prefix[:, :width])
        forced = jnp.minimum(prefix_length, width).astype(jnp.int32)
    return Rows(
        tokens=put(rows.tokens, tokens),
        index=put(rows.index, 0),
        active=put(rows.active, True),
        live_logprob=put(rows.live_logprob, 0.0),
        finished_score=put(rows.finished_score, NEG_INF),
        finished_end=put(rows.finished_end, 0),
        forced=put(rows.forced, forced),
        cache=cache,
    )


def row_steps(
    rows_to_logits,
    rows: Rows,
    num_steps: int,
    limit: int,
    options: DecodeOptions,
    *,
    eos_id: int = EOS_ID,
    logit_bias=None,
) -> Rows:
    """Up to ``num_steps`` search steps of every active row, each at its own position.

    ``rows_to_logits(tokens [B], cache, positions [B], limit) -> (logits [B, V], cache)``.
    Stops early when no row is active or an active row reached ``limit`` (the caller then runs
    the next call with a larger limit). Each row follows exactly the search of ``decode``: mode
    'mt3' is ``beam_search(num_beams=1)`` row by row (a row that can no longer change its result
    stops, as the batched search's rows do in effect), 'greedy' is ``greedy_decode``.
    """
    if options.mode not in ("mt3", "greedy"):
        raise DecodeError("continuous batching runs the 'mt3' and 'greedy' searches only")
    max_length = options.max_length
    batch = rows.tokens.shape[0]
    row_ids = jnp.arange(batch)
    min_penalty = brevity_penalty(options.alpha, max_length + 1)

    def cond(state):
        count, rows = state
        inside = jnp.all(~rows.active | (rows.index < limit))
        return (count < num_steps) & jnp.any(rows.active) & inside

    def body(state):
        count, rows = state
        active = rows.active
        index = jnp.where(active, rows.index, 0)  # idle rows compute at position 0, unused
        last = rows.tokens[row_ids, index]
        logits, cache = rows_to_logits(last, rows.cache, index, limit)
        if logit_bias is not None:
            logits = logits + logit_bias
        live_logprob, finished_score = rows.live_logprob, rows.finished_score
        position = index + 1
        kept = rows.tokens[row_ids, position]
        forcing = active & (position <= rows.forced)  # a given prefix id: taken as it is
        if options.mode == "greedy":
            chosen = jnp.where(forcing, kept, jnp.argmax(logits, axis=-1).astype(jnp.int32))
            ended = active & ~forcing & (chosen == eos_id)
            finished_end = jnp.where(ended, index + 1, rows.finished_end)
            searching = ~ended
        else:
            log_probs = jax.nn.log_softmax(logits.astype(jnp.float32)) + live_logprob[:, None]
            top_log_probs, top_ids = jax.lax.top_k(log_probs, 2)
            top_ids = top_ids.astype(jnp.int32)
            is_eos = top_ids == eos_id
            pick = jnp.argmax(top_log_probs + is_eos * NEG_INF, axis=-1)  # best non-EOS
            chosen = jnp.where(forcing, kept, top_ids[row_ids, pick])
            searched = jnp.where(forcing, log_probs[row_ids, kept], top_log_probs[row_ids, pick])
            live_logprob = jnp.where(active, searched, live_logprob)
            scores = top_log_probs / brevity_penalty(options.alpha, index + 1)[:, None]
            scores = scores + (~is_eos) * NEG_INF
            merged = jnp.concatenate([rows.finished_score[:, None], scores], axis=1)
            best = jnp.argmax(merged, axis=-1)  # ties keep the older candidate, as top_k does
            replaced = active & ~forcing & (best > 0)
            finished_score = jnp.where(replaced, merged[row_ids, best], finished_score)
            finished_end = jnp.where(replaced, index + 1, rows.finished_end)
            can_improve = ~(finished_end > 0) | ~(finished_score > live_logprob / min_penalty)
            searching = can_improve
        tokens = rows.tokens.at[row_ids, position].set(jnp.where(active, chosen, kept))
        new_index = jnp.where(active, position, rows.index)
        rows = Rows(
            tokens=tokens,
            index=new_index,
            active=active & searching & (new_index < max_length),
            live_logprob=live_logprob,
            finished_score=finished_score,
            finished_end=finished_end,
            forced=rows.forced,
            cache=cache,
        )
        return count + 1, rows

    return jax.lax.while_loop(cond, body, (jnp.int32(0), rows))[1]


def row_result(tokens: np.ndarray, index: int, finished_end: int, eos_id: int = EOS_ID):
    """The ids of a row that stopped, as ``decode`` returns them up to EOS: the finished
    candidate, or the live sequence when none finished."""
    if finished_end > 0:
        return [*np.asarray(tokens[1:finished_end]).tolist(), eos_id]
    return np.asarray(tokens[1 : index + 1]).tolist()
