"""transformers' continuous batching backend against the static-batching one."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from engines import Decoding, GenerationRequest, load_engine
from engines.errors import ConfigError, EngineOutOfMemoryError
from tests.engines.prompts import PROMPTS

MAX_NEW = 20
CB_SETTINGS = {"dtype": "float32", "num_blocks": 64, "page_size": 32, "max_batch_tokens": 256}


@pytest.fixture(scope="module")
def engine():
    with load_engine("transformers_cb", "synthetic:tiny", **CB_SETTINGS) as engine:
        yield engine


@pytest.fixture(scope="module")
def static_outputs():
    """Greedy completions of the static-batching backend (batch 4, float32)."""
    with load_engine("transformers", "synthetic:tiny", batch_size=4, dtype="float32") as static:
        return static.generate(
            [GenerationRequest(prompt=p, max_new_tokens=MAX_NEW) for p in PROMPTS]
        )


def test_greedy_equals_static_batching_token_for_token(engine, static_outputs):
    requests = [GenerationRequest(prompt=p, max_new_tokens=MAX_NEW) for p in PROMPTS]
    steps_before = engine.stats.num_decode_steps
    outputs = engine.generate(requests)
    assert [o[0].token_ids for o in outputs] == [o[0].token_ids for o in static_outputs]
    assert [o[0] for o in outputs] == [o[0] for o in static_outputs]  # texts, counts, reasons
    # All 16 rows run together: the prompts' 363 tokens prefill in two passes
    # of max_batch_tokens=256 (the second also decodes), then one pass per token.
    assert MAX_NEW <= engine.stats.num_decode_steps - steps_before <= MAX_NEW + 1


def test_greedy_and_seeded_sampling_repeat_across_runs(engine):
    greedy = [GenerationRequest(prompt=p, max_new_tokens=12) for p in PROMPTS[:6]]
    assert engine.generate(greedy) == engine.generate(greedy)
    sampled = [
        GenerationRequest(
            prompt=p, max_new_tokens=12, decoding=Decoding(temperature=1.0, seed=3, n=3)
        )
        for p in PROMPTS[:4]
    ]
    first = engine.generate(sampled)
    assert [len(o) for o in first] == [3] * 4
    assert len({c.token_ids for o in first for c in o}) > 4, "samples barely differ"
    assert engine.generate(sampled) == first
    reseeded = [
        GenerationRequest(
            prompt=r.prompt, max_new_tokens=12, decoding=Decoding(temperature=1.0, seed=4, n=3)
        )
        for r in sampled
    ]
    assert engine.generate(reseeded) != first


def test_replayed_lengths_are_exact_and_ignore_eos_and_stops(engine, static_outputs):
    # Random weights never emit EOS, so declare one: the first greedy token of
    # prompt 0 from the 3rd on that is new.  Free rows must stop there;
    # replayed rows must run past it.
    tokens = static_outputs[0][0].token_ids
    position = next(k for k in range(2, len(tokens)) if tokens[k] not in tokens[:k])
    eos = tokens[position]
    original, engine.eos_ids = engine.eos_ids, frozenset({eos})
    try:
        free = engine.generate([GenerationRequest(prompt=PROMPTS[0], max_new_tokens=MAX_NEW)])
        targets = [3, 17, 9, 30, 1]
        replayed = engine.generate(
            [
                GenerationRequest(
                    prompt=PROMPTS[0], max_new_tokens=32, target_output_tokens=t, stop=(" ",)
                )
                for t in targets
            ]
        )
    finally:
        engine.eos_ids = original
    assert free[0][0].finish_reason == "eos"
    assert free[0][0].completion_tokens == position + 1  # the manager stopped at EOS
    assert free[0][0].token_ids == tokens[:position]
    assert [o[0].completion_tokens for o in replayed] == targets
    assert [len(o[0].token_ids) for o in replayed] == targets
    assert {o[0].finish_reason for o in replayed} == {"length"}
    assert replayed[3][0].token_ids[:MAX_NEW] == static_outputs[0][0].token_ids


def test_stop_strings_cut_text_and_set_reason(engine, static_outputs):
    requests = []
    for prompt, [completion] in zip(PROMPTS, static_outputs, strict=True):
        stop = completion.text[4:7]
        requests.append(GenerationRequest(prompt=prompt, max_new_tokens=MAX_NEW, stop=(stop,)))
    outputs = engine.generate(requests)
    for request, [full], [cut] in zip(requests, static_outputs, outputs, strict=True):
        if not request.stop[0].strip():
            continue
        assert cut.finish_reason == "stop"
        assert cut.text == full.text[: full.text.find(request.stop[0])]
        assert cut.completion_tokens < full.completion_tokens
    assert sum(o[0].finish_reason == "stop" for o in outputs) >= len(PROMPTS) - 3


def test_request_larger_than_the_cache_is_refused(engine):
    too_long = GenerationRequest(prompt=PROMPTS[4], max_new_tokens=64 * 32)
    with pytest.raises(EngineOutOfMemoryError, match="num_blocks"):
        engine.generate([too_long])
    [[ok]] = engine.generate([GenerationRequest(prompt=PROMPTS[4], max_new_tokens=4)])
    assert ok.completion_tokens == 4  # the engine still works after the refusal


def test_mixed_decoding_in_one_call_is_refused(engine):
    requests = [
        GenerationRequest(prompt=PROMPTS[0]),
        GenerationRequest(prompt=PROMPTS[1], decoding=Decoding(temperature=0.5)),
    ]
    with pytest.raises(ConfigError, match="decoding"):
        engine.generate(requests)


@pytest.mark.parametrize(
    ("setting", "value"),
    [
        ("num_blocks", 0),
        ("page_size", 2),
        ("max_batch_tokens", 0),
        ("max_requests_per_batch", 0),
        ("attn_implementation", "flex_attention"),
        ("scheduler_type", "lifo"),
        ("dtype", "int8"),
    ],
)
def test_bad_settings_name_the_field(setting, value):
    with pytest.raises(ConfigError, match=setting):
        load_engine("transformers_cb", "synthetic:tiny", **{setting: value})


def test_engines_never_closed_neither_leak_their_thread_nor_block_exit():
    # The manager's loop is a non-daemon thread: without the engine's own
    # shutdown hooks, a dropped engine keeps it running and exit hangs forever.
    script = textwrap.dedent(
        """
        import gc, threading
        def busy():
            return [t for t in threading.enumerate() if not t.daemon and t.is_alive()]
        from engines import GenerationRequest, load_engine
        settings = dict(dtype="float32", num_blocks=8, page_size=16, max_batch_tokens=64)
        request = GenerationRequest(prompt="Hi", max_new_tokens=3)
        dropped = load_engine("transformers_cb", "synthetic:tiny", **settings)
        dropped.generate([request])
        assert len(busy()) == 2, busy()
        del dropped
        gc.collect()
        assert busy() == [threading.main_thread()], busy()
        kept = load_engine("transformers_cb", "synthetic:tiny", **settings)
        print(kept.generate([request])[0][0].completion_tokens)
        """
    )
    root = Path(__file__).resolve().parents[2]
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=root, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split() == ["3"]
