"""The library's words stand on their own: no file of ``bnnlib/`` speaks of the book or its sources.

Docstrings, comments, help strings and error messages of ``bnnlib`` cite the papers (author, year)
and the authors' released code by name, or say what a thing is. They never mention the source
repositories by their numbers ("seed 002", "the seeds' commands"), a chapter, a notebook, the book,
a ``params/`` or ``shared/`` path, or a section of a specification that is not part of the
repository ("spec A.3", "spec §2c", "spec P-A2").

Only the text of a file is scanned, i.e. its comments and string literals (docstrings, help and
error texts), so that a random seed (``--seed``, ``derive_seed``, ``seed: int``) and names such as
``SEED_KEYS`` pass. Which packages ``bnnlib`` imports is a question for the layout tests.
"""

from __future__ import annotations

import io
import re
import tokenize
from pathlib import Path

import pytest

LIBRARY = Path(__file__).resolve().parents[2] / "bnnlib"

# (what is wrong, pattern); every pattern is matched case-insensitively against one line of text.
FORBIDDEN: tuple[tuple[str, str], ...] = (
    ("a source repository by its number", r"\bseeds?[ _-]?0\d\d\b"),
    ("the source repositories as 'seeds'", r"\bseeds'|\bseed's\b|\bthe seeds\b"),
    ("a chapter", r"\bchapters?\b"),
    ("a notebook", r"\bnotebooks?\b"),
    ("the book", r"\bbnnlib_book\b|\bbook\b|\bjupyter[- ]book\b"),
    ("a params/ path", r"\bparams/"),
    ("a shared/ path", r"\bshared/"),
    ("a spec file", r"bop-bop2-bnew-bmd|bayesbinn-ste-iterative"),
    # "spec A.3", "spec §2c", "spec P-A2", "spec 1c", "Spec A.6.1", "(spec 2c table)".
    ("a section of the spec", r"\bspec\.?\s*(?:§|[A-Z]\.\d|P-[A-Z]?\d|\d)"),
    ("a pitfall or test-vector tag of the spec", r"\b(?:P|TV)-[AB]\d+\b"),
)
_COMPILED = tuple((why, re.compile(pattern, re.IGNORECASE)) for why, pattern in FORBIDDEN)

_TEXT_TOKENS = {tokenize.COMMENT, tokenize.STRING}
if hasattr(tokenize, "FSTRING_MIDDLE"):  # Python >= 3.12 splits f-strings into parts
    _TEXT_TOKENS.add(tokenize.FSTRING_MIDDLE)


def _text_lines(source: str) -> list[tuple[int, str]]:
    """(line number, text) for every line of every comment and string literal in ``source``."""
    out: list[tuple[int, str]] = []
    for tok in tokenize.generate_tokens(io.StringIO(source).readline):
        if tok.type in _TEXT_TOKENS:
            for offset, line in enumerate(tok.string.splitlines()):
                out.append((tok.start[0] + offset, line))
    return out


def find_violations(source: str, where: str) -> list[str]:
    """``where:line: what (the line)`` for every forbidden mention in ``source``'s text."""
    found = []
    for lineno, line in _text_lines(source):
        for why, pattern in _COMPILED:
            if pattern.search(line):
                found.append(f"{where}:{lineno}: {why}: {line.strip()}")
    return found


def _library_files() -> list[Path]:
    return sorted(LIBRARY.rglob("*.py"))


def test_the_library_has_files_to_scan() -> None:
    assert len(_library_files()) > 10


def test_no_library_file_mentions_seeds_chapters_the_book_or_spec_sections() -> None:
    root = LIBRARY.parent
    found = []
    for path in _library_files():
        found += find_violations(path.read_text(encoding="utf-8"), str(path.relative_to(root)))
    assert not found, "cite the paper or the released code instead:\n" + "\n".join(found)


@pytest.mark.parametrize(
    "text",
    [
        '"""Seed 002\'s JSON run files."""',
        "# the seed-002 STE baseline",
        "x = 1  # the seeds' commands",
        '"""The seed\'s preprocessing."""',
        "# The seeds build their optimizers the same way",
        '"""What a chapter needs."""',
        "# so configs and notebooks build models by name",
        '"""Optimizers and the book\'s runner."""',
        "# see bnnlib_book.params",
        'help = "a file under params/bayesbinn"',
        "# shared/spec/bop-bop2-bnew-bmd.md",
        '"""BayesBiNN (spec A.3)."""',
        "# PSNR offset (spec §2c)",
        "x = 1  # (spec P-A2)",
        '"""The model (seed 000, spec 2a)."""',
        '"""Spec A.6.1: cosine from lr to 1e-16."""',
        "# stale mu (P-A1)",
        'raise ValueError(f"{name}: see spec 1f.3")',
    ],
)
def test_each_kind_of_mention_is_caught(text: str) -> None:
    assert find_violations(text + "\n", "x.py"), text


@pytest.mark.parametrize(
    "text",
    [
        'p.add_argument("--seed", type=int, default=0)',
        "seed = derive_seed(base_seed, 3)  # a well-mixed seed per run",
        '"""A seeded class-stratified random subset; the same seed selects the same images."""',
        "SEED_KEYS = ('seed',)  # the keys of a run file",
        '"""Integer buffers such as num_batches_tracked are bookkeeping."""',
        "# adam_bias_correction=True is the textbook alternative",
        '"""BayesBiNN (Meng, Bachmann & Khan, 2020), as the authors\' released code does it."""',
        '"""The reproducibility study of Bop (nancy-nayak/rethinking-bnn), its ``binaryvgg``."""',
        '"""Not the paper\'s Tables 5 and 8: conv -> max-pool -> BN -> ReLU."""',
        "from bnnlib.models import registry  # the model registry",
        "params = inspect.signature(factory).parameters",
        '"""The special case of a spectral norm."""',
    ],
)
def test_legitimate_words_pass(text: str) -> None:
    assert not find_violations(text + "\n", "x.py"), text
