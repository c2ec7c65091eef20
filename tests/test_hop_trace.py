"""benchmarks/hop_trace marks the committed tree at lines it names: a change that moves one
of them fails here, not in the middle of a benchmark."""
from __future__ import annotations

import py_compile

from benchmarks.hop_trace import MARKS, traced_tree


def test_every_mark_finds_its_line_and_the_traced_modules_compile(tmp_path) -> None:
    tree, marks = tmp_path / "tree", tmp_path / "marks"
    traced_tree(tree, marks)
    files = {rel for rel, *_ in MARKS}
    placed = sum((tree / rel).read_text().count("from oms._hop_mark import mark") for rel in files)
    assert placed == len(MARKS) + 1  # and the one after sendToTarget returns
    for rel in files:
        py_compile.compile(str(tree / rel), doraise=True)
