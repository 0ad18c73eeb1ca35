"""Searches as pure functions of hand-made logits (no network)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from mt3.model.decoding import (
    FORBIDDEN,
    DecodeOptions,
    beam_search,
    decode,
    empty_rows,
    greedy_decode,
    instrument_logit_bias,
    phase_limits,
    row_result,
    row_steps,
    start_rows,
)
from mt3.vocab import VocabError, parse_instruments, vocabulary

EOS = 1
VOCAB = 8


def table_callback(table: np.ndarray):
    """tokens_to_logits that ignores the history: row ``index`` of a [steps, V] log-prob table.
    The cache counts calls per row so tests can see the loop stop early."""
    table = jnp.asarray(table, jnp.float32)

    def tokens_to_logits(tokens, cache, index, limit):
        logits = jnp.broadcast_to(
            table[jnp.minimum(index, table.shape[0] - 1)], (tokens.shape[0], VOCAB)
        )
        return logits, cache + 1

    return tokens_to_logits


def log_probs(*rows):
    """Each row: {token: probability}; the rest share what is left."""
    out = []
    for row in rows:
        p = np.full(VOCAB, (1.0 - sum(row.values())) / (VOCAB - len(row)))
        for token, value in row.items():
            p[token] = value
        out.append(np.log(p))
    return np.array(out)


def test_greedy_stops_at_eos_and_pads():
    table = log_probs({3: 0.9}, {4: 0.9}, {EOS: 0.9}, {5: 0.9})
    callback = table_callback(table)
    tokens = greedy_decode(callback, jnp.zeros(2), 2, 6)
    assert tokens.tolist() == [[3, 4, EOS, 0, 0, 0]] * 2


def test_greedy_runs_to_max_length_without_eos():
    table = log_probs({3: 0.9})
    tokens = jax.jit(lambda c: greedy_decode(table_callback(table), c, 1, 5))(jnp.zeros(1))
    assert tokens.tolist() == [[3, 3, 3, 3, 3]]


def test_mt3_beam_one_ends_where_eos_is_second_best():
    # Token 3 is always the argmax; at step 2, EOS is second-best. Greedy never stops, but t5x's
    # one-beam search files "3 3 EOS" as finished, and no live continuation can beat it.
    table = log_probs({3: 0.5}, {3: 0.5}, {3: 0.4, EOS: 0.35}, {3: 0.5}, {3: 0.5})
    callback = table_callback(table)
    greedy = greedy_decode(callback, jnp.zeros(1), 1, 8)
    assert greedy.tolist() == [[3] * 8]
    tokens, score = beam_search(callback, jnp.zeros(1), 1, 8, num_beams=1)
    assert tokens.tolist() == [[3, 3, EOS, 0, 0, 0, 0, 0]]
    expected = (np.log(0.5) * 2 + np.log(0.35)) / ((5 + 3) / 6) ** 0.6
    assert float(score[0]) == pytest.approx(expected, rel=1e-5)


def test_mt3_beam_one_agrees_with_greedy_when_eos_is_never_close():
    table = log_probs({3: 0.6, 4: 0.2}, {4: 0.6}, {5: 0.6}, {EOS: 0.7})
    callback = table_callback(table)
    greedy = greedy_decode(callback, jnp.zeros(1), 1, 6)
    tokens, _ = beam_search(callback, jnp.zeros(1), 1, 6, num_beams=1)
    assert tokens.tolist() == greedy.tolist() == [[3, 4, 5, EOS, 0, 0]]


def history_callback():
    """A two-step model whose second distribution depends on the first token: after 2 the
    sequence ends with certainty, after 3 it does not. Greedy picks 3 (p=0.55) then a
    0.3-probability EOS; the best sequence is 2 EOS (0.45 * 1.0)."""

    def tokens_to_logits(tokens, cache, index, limit):
        first = jnp.full((VOCAB,), -20.0).at[3].set(np.log(0.55)).at[2].set(np.log(0.45))
        after_two = jnp.full((VOCAB,), -20.0).at[EOS].set(0.0)
        after_three = jnp.full((VOCAB,), np.log(0.7 / 6)).at[EOS].set(np.log(0.3))
        after_three = after_three.at[0].set(-20.0)
        second = jnp.where((tokens == 2)[:, None], after_two, after_three)
        logits = jnp.where(index == 0, jnp.broadcast_to(first, second.shape), second)
        return logits, cache

    return tokens_to_logits


def test_beam_search_finds_a_better_sequence_than_greedy():
    callback = history_callback()
    greedy = greedy_decode(callback, jnp.zeros(1), 1, 4)
    assert greedy.tolist()[0][0] == 3
    tokens, _ = beam_search(callback, jnp.zeros(1), 1, 4, num_beams=2)
    assert tokens.tolist() == [[2, EOS, 0, 0]]


def test_beam_cache_follows_the_beams():
    # The cache stores each row's input token per position; the step-2 distribution depends on
    # the token stored at position 1, so a cache not reordered with its beams changes the result.
    def row(**probs):
        p = np.full(VOCAB, 1e-4)
        for token, value in probs.items():
            p[int(token[1:])] = value
        return jnp.log(jnp.asarray(p / p.sum(), jnp.float32))

    # After 2 the best continuation (5) is likelier than after 3, so the beams swap rows at
    # step 1 and the caches must swap with them.
    first, end = row(t3=0.6, t2=0.4), row(t1=0.99)
    second_after_three, second_after_two = row(t5=0.5, t4=0.49), row(t5=0.99)
    after_three, after_two = row(t1=0.99), row(t6=0.99)

    def tokens_to_logits(tokens, cache, index, limit):
        cache = cache.at[:, index].set(tokens)
        second = jnp.where((tokens == 3)[:, None], second_after_three, second_after_two)
        third = jnp.where((cache[:, 1] == 3)[:, None], after_three, after_two)
        logits = jnp.where(index == 1, second, jnp.where(index == 2, third, end))
        logits = jnp.where(index == 0, jnp.broadcast_to(first, logits.shape), logits)
        return logits, cache

    cache = jnp.zeros((1, 8), jnp.int32)
    tokens, _ = beam_search(tokens_to_logits, cache, 1, 6, num_beams=2)
    assert tokens.tolist() == [[2, 5, 6, EOS, 0, 0]]  # a stale cache gives [2, 5, EOS]


def test_decode_modes_and_logit_bias():
    table = log_probs({3: 0.6, 4: 0.3})
    bias = np.zeros(VOCAB, np.float32)
    bias[3] = FORBIDDEN
    callback = table_callback(table)
    tokens = decode(callback, jnp.zeros(1), 1, DecodeOptions("greedy", max_length=3), bias)
    assert tokens.tolist() == [[4, 4, 4]]
    tokens = decode(callback, jnp.zeros(1), 1, DecodeOptions("mt3", max_length=3), bias)
    assert tokens.tolist() == [[4, 4, 4]]
    with pytest.raises(ValueError, match="decode mode"):
        DecodeOptions("sample")


def test_instrument_masks():
    vocab = vocabulary("mt3")
    programs, drums = parse_instruments("piano,bass,drums")
    assert programs == frozenset(range(0, 8)) | frozenset(range(32, 40)) and drums
    bias = instrument_logit_bias(vocab, 1536, programs, drums)
    first = vocab.first_id["program"]
    assert bias[first + 0] == 0 and bias[first + 33] == 0 and bias[first + 40] == FORBIDDEN
    assert bias[vocab.first_id["drum"] + 36] == 0
    programs, drums = parse_instruments("40-41")
    bias = instrument_logit_bias(vocab, 1536, programs, drums)
    assert bias[vocab.first_id["drum"] + 36] == FORBIDDEN and bias[first + 41] == 0
    programs, drums = parse_instruments("drums")
    bias = instrument_logit_bias(vocab, 1536, programs, drums)
    assert bias[vocab.first_id["pitch"] + 60] == FORBIDDEN  # no melodic program left
    for bad in ("kazoo", "200", ""):
        with pytest.raises(VocabError):
            parse_instruments(bad)


def segment_model(num_segments: int, length: int, seed: int = 0):
    """A toy language model per segment: logits = table[segment, position] + mix[last token],
    with EOS growing likelier along the sequence so segments end at many different lengths and
    EOS is often second-best (where MT3's one-beam search and greedy decoding differ)."""
    rng = np.random.default_rng(seed)
    table = rng.normal(0.0, 1.5, (num_segments, length + 1, VOCAB))
    table[:, :, EOS] += np.linspace(-4.0, 3.0, length + 1)[None] + rng.normal(
        0, 2, (num_segments, 1)
    )
    mix = jnp.asarray(rng.normal(0.0, 0.7, (VOCAB, VOCAB)), jnp.float32)
    return jnp.asarray(table, jnp.float32), mix


@pytest.mark.parametrize("mode", ["mt3", "greedy"])
def test_continuous_rows_match_the_batched_search(mode):
    """Rows refilled as they finish (row_steps) give each segment exactly the ids of the batched
    search run on that segment alone."""
    count, length, batch = 23, 40, 4
    table, mix = segment_model(count, length)
    options = DecodeOptions(mode, max_length=length)

    def alone(segment):
        def tokens_to_logits(tokens, cache, index, limit):
            return table[segment, index][None] + mix[tokens], cache

        ids = decode(tokens_to_logits, jnp.zeros(1), 1, options)
        return np.asarray(ids[0]).tolist()

    def rows_to_logits(tokens, cache, positions, limit):
        return table[cache, positions] + mix[tokens], cache

    run = jax.jit(lambda rows, limit: row_steps(rows_to_logits, rows, 3, limit, options),
                  static_argnums=1)  # fmt: skip
    start = jax.jit(lambda rows, slots, segments: start_rows(
        rows, slots, rows.cache.at[slots].set(segments, mode="drop")))  # fmt: skip
    rows = empty_rows(batch, length, jnp.zeros(batch, jnp.int32))
    holder, todo, results = [None] * batch, list(range(count)), {}
    limits = phase_limits(length, 16)
    while todo or any(h is not None for h in holder):
        free = [r for r in range(batch) if holder[r] is None][: len(todo)]
        if free:
            slots = np.full(2, batch, np.int32)  # two per call; the extra slot is ignored
            for group in range(0, len(free), 2):
                chosen = free[group : group + 2]
                segments = np.zeros(2, np.int32)
                for k, row in enumerate(chosen):
                    holder[row], segments[k], slots[k] = todo.pop(0), 0, row
                    segments[k] = holder[row]
                rows = start(rows, slots, segments)
                slots[:] = batch
        index = np.asarray(rows.index)
        deepest = max(index[r] for r in range(batch) if holder[r] is not None)
        rows = run(rows, next(limit for limit in limits if limit > deepest))
        active, index = np.asarray(rows.active), np.asarray(rows.index)
        for row in range(batch):
            if holder[row] is not None and not active[row]:
                ids = row_result(np.asarray(rows.tokens[row]), index[row], rows.finished_end[row])
                results[holder[row]], holder[row] = ids, None
    lengths = []
    for segment in range(count):
        expected = alone(segment)
        expected = expected[: expected.index(EOS) + 1] if EOS in expected else expected
        assert results[segment] == expected, segment
        lengths.append(len(expected))
    assert len(set(lengths)) > 8 and max(lengths) > 16  # many lengths, several limits crossed


@pytest.mark.parametrize("mode", ["greedy", "mt3"])
def test_rows_keep_a_forced_prefix_and_search_on_from_it(mode):
    """A row started with a prefix (a tie section, in segment context) emits it unchanged and
    then searches as the model would from that prefix: with greedy decoding exactly the ids of
    a search whose model can only choose the prefix at those positions."""
    count, length, width = 6, 40, 5
    table, mix = segment_model(count, length, seed=1)
    rng = np.random.default_rng(2)
    prefix = rng.integers(3, VOCAB, (count, width)).astype(np.int32)
    prefix_length = np.array([0, 1, 3, 5, 5, 2], np.int32)
    options = DecodeOptions(mode, max_length=length)

    def rows_to_logits(tokens, cache, positions, limit):
        return table[cache, positions] + mix[tokens], cache

    rows = empty_rows(count, length, jnp.zeros(count, jnp.int32))
    slots = jnp.arange(count)
    rows = start_rows(rows, slots, jnp.arange(count), jnp.asarray(prefix), prefix_length)
    for limit in phase_limits(length, 16):
        rows = row_steps(rows_to_logits, rows, length, limit, options)
    for segment in range(count):
        given = prefix[segment, : prefix_length[segment]].tolist()
        ids = row_result(np.asarray(rows.tokens[segment]), int(rows.index[segment]),
                         int(rows.finished_end[segment]))  # fmt: skip
        assert ids[: len(given)] == given and EOS not in ids[: len(given)]
        if mode == "greedy":

            def forced(tokens, cache, index, limit, segment=segment, given=given):
                logits = table[segment, index][None] + mix[tokens]
                at = jnp.asarray(given + [0])[jnp.minimum(index, len(given))]
                bonus = jax.nn.one_hot(at, VOCAB) * 1e4 * (index < len(given))
                return logits + bonus, cache

            expected = np.asarray(decode(forced, jnp.zeros(1), 1, options)[0]).tolist()
            expected = expected[: expected.index(EOS) + 1] if EOS in expected else expected
            assert ids == expected, segment
