"""The repository stands alone: nothing in src/ or tests/ reads the project folder beside it.

A fresh clone has nothing beside it; a test or a module that reads it passes on a developer's
machine and fails for everyone else (issue #13 A). The copies the tests need live in
tests/data/ (its README names their sources).
"""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
# The developers' folder beside the repository, and a path that climbs out to it in any spelling
# a Path or a string would use: "../<folder>", parent / "<folder>", parents[3] / "<folder>" ...
FOLDER = "shared"
OUTSIDE = re.compile(rf"""\.\./{FOLDER}|/ *["']{FOLDER}["']|["']{FOLDER}["'] */""")


def test_no_source_or_test_reads_the_shared_folder() -> None:
    offenders = []
    for folder in ("src", "tests"):
        for path in (ROOT / folder).rglob("*.py"):
            if path == Path(__file__).resolve():
                continue  # this file names the pattern it looks for
            for number, line in enumerate(path.read_text("utf-8").splitlines(), start=1):
                if OUTSIDE.search(line):
                    offenders.append(f"{path.relative_to(ROOT)}:{number}: {line.strip()}")
    assert not offenders, "reads outside the repository:\n" + "\n".join(offenders)


def test_the_copied_test_data_is_there() -> None:
    data = ROOT / "tests" / "data"
    for name in ("vectors/public_vectors.json", "vectors/seed_examples.json",
                 "spec/perp-mechanics.md", "prices/btcusd_1m_2023-03-01_2023-03-07.csv",
                 "prices/btcusd_1d_2011-2025.csv"):
        assert (data / name).stat().st_size > 0, name
