"""A tiny llama-architecture GGUF model with made-up weights, written by PyPI's `gguf` package.

It is a real model file: llama.cpp loads it, runs it and streams its tokens. Its words are
gibberish drawn from a small vocabulary, with sentence ends among them, which is all a test of
streaming, sentence splitting, deadlines and fallback needs. Two layers of width 64: it loads
and answers in milliseconds.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

WORDS = ("I", "keep", "the", "lamp", "lit", "at", "dusk", "and", "wick", "lens", "sea", "night", "light", "tower")
ENDS = (".", "!", "?")
EMBEDDING = 64
LAYERS = 2
HEADS = 4
FEED_FORWARD = 128
CONTEXT = 8192
CHAT_TEMPLATE = (
    "{% for message in messages %}{{ message['role'] }}: {{ message['content'] }}\n{% endfor %}"
    "{% if add_generation_prompt %}assistant:{% endif %}"
)
_NORMAL, _UNKNOWN, _CONTROL, _BYTE = 1, 2, 3, 6


def write_tiny_llama(path: Path, *, seed: int = 7, ends: bool = True) -> Path:
    """Write the model to `path` and return it; with `ends` False its replies go on until max_tokens."""
    import gguf  # the `llm` extra: only tests that run llama.cpp get here

    tokens, types, logits = _vocabulary()
    if not ends:
        logits[2] = -20.0
    rng = np.random.default_rng(seed)
    # Every hidden state leans on one direction, so the output layer's weight along it sets
    # each token's odds: words often, a sentence end now and then, bytes and controls never.
    lean = np.zeros(EMBEDDING, dtype=np.float32)
    lean[0] = 1.0

    def noise(*shape: int, scale: float = 0.02) -> np.ndarray:
        return (rng.standard_normal(shape) * scale).astype(np.float32)

    writer = gguf.GGUFWriter(str(path), "llama")
    writer.add_context_length(CONTEXT)
    writer.add_embedding_length(EMBEDDING)
    writer.add_block_count(LAYERS)
    writer.add_feed_forward_length(FEED_FORWARD)
    writer.add_head_count(HEADS)
    writer.add_head_count_kv(HEADS)
    writer.add_rope_dimension_count(EMBEDDING // HEADS)
    writer.add_layer_norm_rms_eps(1e-5)
    writer.add_file_type(gguf.LlamaFileType.ALL_F32)
    writer.add_tokenizer_model("llama")
    writer.add_token_list(tokens)
    writer.add_token_scores([0.0] * len(tokens))
    writer.add_token_types(types)
    writer.add_unk_token_id(0)
    writer.add_bos_token_id(1)
    writer.add_eos_token_id(2)
    writer.add_chat_template(CHAT_TEMPLATE)

    writer.add_tensor("token_embd.weight", noise(len(tokens), EMBEDDING) + lean)
    writer.add_tensor("output_norm.weight", np.ones(EMBEDDING, dtype=np.float32))
    output = noise(len(tokens), EMBEDDING, scale=0.3)
    output[:, 0] = logits / np.sqrt(EMBEDDING)  # RMS norm scales the lean to sqrt(EMBEDDING)
    writer.add_tensor("output.weight", output)
    for layer in range(LAYERS):
        name = f"blk.{layer}"
        writer.add_tensor(f"{name}.attn_norm.weight", np.ones(EMBEDDING, dtype=np.float32))
        for part in ("attn_q", "attn_k", "attn_v", "attn_output"):
            writer.add_tensor(f"{name}.{part}.weight", noise(EMBEDDING, EMBEDDING))
        writer.add_tensor(f"{name}.ffn_norm.weight", np.ones(EMBEDDING, dtype=np.float32))
        writer.add_tensor(f"{name}.ffn_gate.weight", noise(FEED_FORWARD, EMBEDDING))
        writer.add_tensor(f"{name}.ffn_up.weight", noise(FEED_FORWARD, EMBEDDING))
        writer.add_tensor(f"{name}.ffn_down.weight", noise(EMBEDDING, FEED_FORWARD))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


def _vocabulary() -> tuple[list[str], list[int], np.ndarray]:
    """SentencePiece-style tokens (all 256 bytes, so any prompt tokenizes), their types, and odds."""
    tokens = ["<unk>", "<s>", "</s>"]
    types = [_UNKNOWN, _CONTROL, _CONTROL]
    logits = [-20.0, -20.0, 2.0]  # the end of the reply: rare, so max_tokens usually ends it
    tokens += [f"<0x{byte:02X}>" for byte in range(256)]
    types += [_BYTE] * 256
    logits += [-20.0] * 256
    tokens += [f"▁{word}" for word in WORDS] + list(ENDS)
    types += [_NORMAL] * (len(WORDS) + len(ENDS))
    logits += [5.0] * len(WORDS) + [4.5] * len(ENDS)  # a sentence ends every ten words or so
    return tokens, types, np.asarray(logits, dtype=np.float32)
