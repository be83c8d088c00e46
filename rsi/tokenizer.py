"""Character tokenizer for the tiny model, built with `tokenizers` and saved as a normal HF tokenizer.

Every character is one token; `<bos>` starts each sequence (NoPE models need it as an attention
sink), `<eos>` ends an answer and `<pad>` fills batches. Because the result is a
`PreTrainedTokenizerFast`, checkpoints load with `AutoTokenizer.from_pretrained` like any model's.
"""

from __future__ import annotations

from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers
from transformers import PreTrainedTokenizerBase, PreTrainedTokenizerFast

SPECIALS = ("<pad>", "<bos>", "<eos>")


def build_char_tokenizer(alphabet: str) -> PreTrainedTokenizerFast:
    """A tokenizer with one token per character of `alphabet` plus the special tokens.

    Example:
        >>> tok = build_char_tokenizer("0123456789+=")
        >>> tok("12+3=")["input_ids"]
        [5, 6, 3, 7, 14]
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
        unk_token="<pad>", padding_side="left",
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
