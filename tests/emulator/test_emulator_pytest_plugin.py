"""The pytest fixture, as a user's test suite sees it: in a pytest run of its own."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "emulator"


def test_a_failing_test_shows_the_functions_log_in_its_report(tmp_path: Path) -> None:
    (tmp_path / "test_user.py").write_text(
        "def test_greets(lambda_emulator):\n"
        f"    fn = lambda_emulator('app.handler', task_root={str(EXAMPLE)!r})\n"
        "    result = fn.invoke({'name': 'Ada'})\n"
        "    assert result.payload == 'something else'\n"
    )
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(tmp_path)],
        cwd=tmp_path, capture_output=True, text=True, timeout=120,
    )
    out = done.stdout
    assert done.returncode == 1, out + done.stderr
    section = out[out.index("lambda emulator log call") :]
    assert "START RequestId:" in section
    assert "REPORT RequestId:" in section
    # Nothing escaped pytest's capture: the log appears only inside the report section.
    assert out.count("START RequestId:") == 1
