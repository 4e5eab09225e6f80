"""Study storage: an existing file that is not a database is never turned into one."""

from __future__ import annotations

from pathlib import Path

import pytest

from commands.main import main
from tuner.search.storage import StudyError, open_study
from tuner.search.study import StudySettings


def test_a_non_database_file_is_refused_and_left_unchanged(tmp_path: Path) -> None:
    notes = tmp_path / "notes.txt"
    notes.write_bytes(b"my notes, not a database\n")
    with pytest.raises(StudyError, match="not a SQLite database"):
        open_study(f"sqlite:///{notes}", "s", StudySettings(model="synthetic:tiny"))
    assert notes.read_bytes() == b"my notes, not a database\n"


def test_the_tune_command_refuses_it_in_one_line(tmp_path: Path, capsys) -> None:
    notes = tmp_path / "notes.txt"
    notes.write_bytes(b"x" * 100)
    code = main(
        ["tune", "--model", "synthetic:tiny", "--dataset", "synthetic", "--count", "4",
         "--storage", f"sqlite:///{notes}", "--profiles-dir", str(tmp_path / "p")]
    )  # fmt: skip
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2
    assert len(err) == 1 and "not a SQLite database" in err[0]
    assert notes.read_bytes() == b"x" * 100


def test_an_existing_database_and_a_new_path_still_open(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'tune.db'}"
    settings = StudySettings(model="synthetic:tiny")
    open_study(url, "s", settings)  # creates it
    assert open_study(url, "s", settings).study_name == "s"  # and joins it
