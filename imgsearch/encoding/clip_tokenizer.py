"""CLIP's byte-pair tokenizer without torch: the same token ids as `open_clip.tokenize`.

open_clip's own tokenizer module imports torch (1.7 s here) to return tensors; a text query on
ONNX Runtime needs only the ids, so this reads the vocabulary that open_clip's package ships
(`bpe_simple_vocab_16e6.txt.gz`, found without importing the package) and applies the same
cleaning, splitting and merges. tests/test_clip_tokenizer.py checks it against open_clip.
"""

from __future__ import annotations

import gzip
import html
import importlib.util
from functools import lru_cache
from pathlib import Path

import numpy as np

from imgsearch.errors import ImgsearchError

VOCABULARY_FILE = "bpe_simple_vocab_16e6.txt.gz"
CACHE_WORDS = 20_000  # merged words remembered (then forgotten all at once)
_MERGES = 49152 - 256 - 2  # the merges CLIP's vocabulary uses
_WORDS = r"""<start_of_text>|<end_of_text>|'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+"""


def vocabulary_file() -> Path:
    """open_clip's bundled BPE vocabulary (the package is located, not imported)."""
    spec = importlib.util.find_spec("open_clip")
    if spec is None or not spec.submodule_search_locations:
        raise ImgsearchError("Text search needs open_clip's tokenizer files: pip install open-clip-torch.")
    path = Path(next(iter(spec.submodule_search_locations))) / VOCABULARY_FILE
    if not path.exists():
        raise ImgsearchError(f"open_clip's vocabulary {path} is missing: reinstall open-clip-torch.")
    return path


def _bytes_to_unicode() -> dict[int, str]:
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1)]
    printable += range(ord("®"), ord("ÿ") + 1)
    codes = printable[:]
    extra = 0
    for b in range(256):
        if b not in printable:
            printable.append(b)
            codes.append(256 + extra)
            extra += 1
    return dict(zip(printable, map(chr, codes), strict=True))


class ClipTokenizer:
    """Texts -> (n, context_length) int64 ids: <start>, the text's tokens, <end>, zeros (a text
    longer than the context is cut, its last id made <end>), as open_clip does."""

    def __init__(self, context_length: int = 77) -> None:
        import regex

        self.context_length = context_length
        self._byte_encoder = _bytes_to_unicode()
        with gzip.open(vocabulary_file()) as f:
            merges = f.read().decode("utf-8").split("\n")[1 : _MERGES + 1]
        pairs = [tuple(m.split()) for m in merges]
        vocab = list(self._byte_encoder.values())
        vocab += [v + "</w>" for v in vocab] + ["".join(p) for p in pairs]
        vocab += ["<start_of_text>", "<end_of_text>"]
        self._ids = {token: i for i, token in enumerate(vocab)}
        self._ranks = {pair: i for i, pair in enumerate(pairs)}
        self.start_id, self.end_id = self._ids["<start_of_text>"], self._ids["<end_of_text>"]
        self._pattern = regex.compile(_WORDS, regex.IGNORECASE)
        self._cache: dict[str, list[int]] = {}

    def __call__(self, texts: list[str] | str) -> np.ndarray:
        texts = [texts] if isinstance(texts, str) else texts
        out = np.zeros((len(texts), self.context_length), dtype=np.int64)
        for row, text in enumerate(texts):
            ids = [self.start_id, *self.encode(text), self.end_id][: self.context_length]
            ids[-1] = self.end_id
            out[row, : len(ids)] = ids
        return out

    def encode(self, text: str) -> list[int]:
        import ftfy

        text = " ".join(html.unescape(html.unescape(ftfy.fix_text(text))).strip().split()).lower()
        ids: list[int] = []
        for word in self._pattern.findall(text):
            ids.extend(self._word_ids("".join(self._byte_encoder[b] for b in word.encode("utf-8"))))
        return ids

    def _word_ids(self, word: str) -> list[int]:
        if word in ("<start_of_text>", "<end_of_text>"):
            return [self._ids[word]]
        ids = self._cache.get(word)
        if ids is None:
            ids = [self._ids[part] for part in self._merge(word)]
            if len(self._cache) >= CACHE_WORDS:  # a service's memory stays bounded
                self._cache.clear()
            self._cache[word] = ids
        return ids

    def _merge(self, token: str) -> list[str]:
        """Byte-pair merges of one word: the lowest-ranked adjacent pair, everywhere, until none."""
        parts = [*token[:-1], token[-1] + "</w>"]
        while len(parts) > 1:
            rank, pair = min((self._ranks.get(p, _MERGES), p) for p in zip(parts, parts[1:], strict=False))
            if rank >= _MERGES:
                break
            merged: list[str] = []
            i = 0
            while i < len(parts):
                if i < len(parts) - 1 and (parts[i], parts[i + 1]) == pair:
                    merged.append(parts[i] + parts[i + 1])
                    i += 2
                else:
                    merged.append(parts[i])
                    i += 1
            parts = merged
        return parts


@lru_cache(maxsize=4)
def tokenizer(context_length: int) -> ClipTokenizer:
    """A tokenizer for this context length, built once (reading the vocabulary takes ~0.3 s)."""
    return ClipTokenizer(context_length)
