"""The README's Python quickstart runs verbatim."""

from __future__ import annotations

import re
from pathlib import Path

README = Path(__file__).resolve().parent.parent / "README.md"


def test_quickstart_runs(tmp_path, monkeypatch, capsys):
    code = re.search(r"## Quickstart \(Python\)\s+```python\n(.*?)```", README.read_text(), re.S).group(1)
    monkeypatch.chdir(tmp_path)
    exec(compile(code, "README.md", "exec"), {})
    out = capsys.readouterr().out
    assert "Oude Kerk" in out and "Prinsenhof" in out and "kind='buildings'" in out
