"""Tokenizers: the tiny model's character tokenizer, and how any tokenizer encodes prompts and answers.

The character tokenizer is built with `tokenizers` and saved as a normal HF tokenizer. Every
character is one token; `<bos>` starts each sequence (NoPE models need it as an attention sink),
`<eos>` ends an answer and `<pad>` fills batches. Because the result is a
`PreTrainedTokenizerFast`, checkpoints load with `AutoTokenizer.from_pretrained` like any model's.

`encode_prompt` is the one place a prompt becomes tokens: a tokenizer with a chat template (a
real instruction-tuned model) gets the prompt as a user message followed by the assistant's
generation prompt; one without (the tiny model) gets `<bos>` and the prompt's characters. The
answer that follows is `encode_answer`: its tokens and the end-of-sequence token.

A tokenizer may carry a response prefix (`response_prefix`, saved in its tokenizer_config.json
from `model.response_prefix`), e.g. `<think>` as in the R1-Zero template: it is appended to every
encoded prompt, so the model continues from it, and it counts as the start of every response
(`rsi.engine.generate` puts it in front of each completion's text; `encode_answer` strips it again).
It may also carry a prompt template (`model.prompt_template`, e.g. an instruction and worked
examples around a task's bare prompt), which wraps every problem's prompt. A prompt that is not a
problem (the self-play proposer's) is encoded with an explicit `prefix`: as it is, without the
template, its response starting with that prefix instead.
"""

from __future__ import annotations

from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers
from transformers import PreTrainedTokenizerBase, PreTrainedTokenizerFast

SPECIALS = ("<pad>", "<bos>", "<eos>")


def build_char_tokenizer(alphabet: str) -> PreTrainedTokenizerFast:
    """A tokenizer with one token per character of `alphabet` plus the special tokens.

    Called plainly it starts a text with `<bos>` as rsi's prompts do (`add_bos_token`, saved with
    it), so plain transformers, TRL, vLLM and lm-eval encode a prompt as rsi does.

    Example:
        >>> tok = build_char_tokenizer("0123456789+=")
        >>> tok("12+3=")["input_ids"]
        [1, 5, 6, 3, 7, 14]
    """
    chars = sorted(set(alphabet))
    vocab = {tok: i for i, tok in enumerate(SPECIALS)}
    for c in chars:
        vocab[c] = len(vocab)
    core = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<pad>"))
    core.pre_tokenizer = pre_tokenizers.Split(Regex("."), behavior="isolated")
    core.decoder = decoders.Fuse()
    return PreTrainedTokenizerFast(
        tokenizer_object=core, pad_token="<pad>", bos_token="<bos>", eos_token="<eos>",
        unk_token="<pad>", padding_side="left", add_bos_token=True,
    )


def text_encoder(tokenizer: PreTrainedTokenizerBase):
    """A fast `str -> list[int]` without special tokens.

    For a character tokenizer (every non-special token one character) this is a dict lookup,
    ~50x cheaper than calling the tokenizer on each of a batch's strings; otherwise the tokenizer.
    """
    cached = getattr(tokenizer, "_rsi_encoder", None)
    if cached is not None:
        return cached
    vocab = tokenizer.get_vocab()
    specials = set(tokenizer.all_special_tokens)
    chars = {t: i for t, i in vocab.items() if t not in specials}
    if chars and all(len(t) == 1 for t in chars):
        def encode(text: str) -> list[int]:
            return [chars[c] for c in text]
    else:
        def encode(text: str) -> list[int]:
            return tokenizer(text, add_special_tokens=False)["input_ids"]
    tokenizer._rsi_encoder = encode
    return encode


PREFIX_KEY = "rsi_response_prefix"
TEMPLATE_KEY = "rsi_prompt_template"


def response_prefix(tokenizer: PreTrainedTokenizerBase) -> str:
    """The text every response starts with (from `model.response_prefix`), usually empty."""
    return tokenizer.init_kwargs.get(PREFIX_KEY, "")


def encode_prompt(tokenizer: PreTrainedTokenizerBase, prompt: str, prefix: str | None = None) -> list[int]:
    """Token ids of `prompt` as the model sees it before its answer (see the module docstring).
    `prefix=None`: a problem, in the model's prompt template, with its response prefix."""
    if prefix is None:
        prompt = tokenizer.init_kwargs.get(TEMPLATE_KEY, "{prompt}").format(prompt=prompt)
        prefix = response_prefix(tokenizer)
    encode = text_encoder(tokenizer)
    if getattr(tokenizer, "chat_template", None):
        text = tokenizer.apply_chat_template([{"role": "user", "content": prompt}], add_generation_prompt=True,
                                             tokenize=False)
        ids = encode(text + prefix)
    else:
        ids = [tokenizer.bos_token_id, *encode(prompt + prefix)]
    return ids


def encode_answer(tokenizer: PreTrainedTokenizerBase, answer: str, prefix: str | None = None) -> list[int]:
    """Token ids of `answer` (without the response prefix, which the prompt holds) and end-of-sequence."""
    prefix = response_prefix(tokenizer) if prefix is None else prefix
    if prefix and answer.startswith(prefix):
        answer = answer[len(prefix):]
    return [*text_encoder(tokenizer)(answer), tokenizer.eos_token_id]
