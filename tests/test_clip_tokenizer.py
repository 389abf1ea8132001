"""imgsearch's torch-free CLIP tokenizer gives open_clip's token ids, for any text."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from imgsearch.encoding.clip_tokenizer import ClipTokenizer

TEXTS = [
    "a red circle on a grey background",
    "Hello,   World! It's 3.14 &amp; <b>bold</b>",
    "日本語のテキスト café naïve Ærøskøbing",
    "",
    "x" * 500,
    "a " * 100,
    "don't stop'll we've",
    "<start_of_text> hi <end_of_text>",
    "emoji 🚲❄️ snow",
    "tab\tnew\nline   UPPER Case",
]


@pytest.fixture(scope="module")
def ours():
    return ClipTokenizer(context_length=16)


@pytest.fixture(scope="module")
def theirs():
    open_clip = pytest.importorskip("open_clip")  # here, not at collection: it loads torchvision
    return open_clip.get_tokenizer("ViT-B-32", context_length=16)


def test_the_same_ids_as_open_clip(ours, theirs) -> None:
    assert np.array_equal(ours(TEXTS), theirs(TEXTS).numpy())


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=80))
def test_the_same_ids_for_any_text(ours, theirs, text: str) -> None:
    assert np.array_equal(ours([text]), theirs([text]).numpy())


def test_a_long_text_is_cut_and_ends_with_end_of_text(ours) -> None:
    ids = ours(["word " * 100])[0]
    assert ids[0] == ours.start_id and ids[-1] == ours.end_id and (ids != 0).all()


def test_tokenizing_imports_neither_torch_nor_open_clip() -> None:
    code = (
        "import sys; from imgsearch.encoding.clip_tokenizer import ClipTokenizer; "
        "ClipTokenizer(77)(['a red bicycle']); "
        "print(sorted(m for m in ('torch', 'open_clip') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
