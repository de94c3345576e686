"""IngestReport: what an ingest added, repaired and skipped (with reasons); renders as a rich table.

>>> r = IngestReport()
>>> r.add("a.json", "buildings", "buildings", 3)
>>> r.skip("a.json", "obj-1", "no geometry")
>>> r.added_count("buildings"), len(r.skipped)
(3, 1)
>>> r.to_frame()[["status", "item", "count"]].values.tolist()
[['added', 'buildings', 3], ['skipped', 'obj-1', None]]
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["Added", "IngestReport", "Repaired", "SkippedItem"]


@dataclass(frozen=True)
class Added:
    file: str
    name: str
    kind: str
    count: int


@dataclass(frozen=True)
class Repaired:
    file: str
    what: str
    count: int
    detail: str = ""


@dataclass(frozen=True)
class SkippedItem:
    file: str
    item: str
    reason: str


@dataclass
class IngestReport:
    """Accumulates over one or many files; ``failed`` holds files refused as a whole (with the error)."""

    added: list[Added] = field(default_factory=list)
    repaired: list[Repaired] = field(default_factory=list)
    skipped: list[SkippedItem] = field(default_factory=list)
    failed: list[SkippedItem] = field(default_factory=list)

    def add(self, file: str | Path, name: str, kind: str, count: int) -> None:
        self.added.append(Added(Path(file).name, name, kind, int(count)))

    def repair(self, file: str | Path, what: str, count: int, detail: str = "") -> None:
        self.repaired.append(Repaired(Path(file).name, what, int(count), detail))

    def skip(self, file: str | Path, item: str, reason: str) -> None:
        self.skipped.append(SkippedItem(Path(file).name, item, reason))

    def fail(self, file: str | Path, reason: str) -> None:
        self.failed.append(SkippedItem(Path(file).name, "(whole file)", reason))

    def extend(self, other: IngestReport) -> None:
        self.added += other.added
        self.repaired += other.repaired
        self.skipped += other.skipped
        self.failed += other.failed

    def added_count(self, name: str) -> int:
        return sum(a.count for a in self.added if a.name == name)

    @property
    def ok(self) -> bool:
        return not self.failed

    def to_frame(self):
        """One row per entry: file, status (added/repaired/skipped/failed), item, kind, count, reason."""
        import pandas as pd

        rows = [dict(file=a.file, status="added", item=a.name, kind=a.kind, count=a.count, reason=None)
                for a in self.added]
        rows += [dict(file=r.file, status="repaired", item=r.what, kind=None, count=r.count, reason=r.detail)
                 for r in self.repaired]
        rows += [dict(file=s.file, status="skipped", item=s.item, kind=None, count=None, reason=s.reason)
                 for s in self.skipped]
        rows += [dict(file=s.file, status="failed", item=s.item, kind=None, count=None, reason=s.reason)
                 for s in self.failed]
        return pd.DataFrame(rows, columns=["file", "status", "item", "kind", "count", "reason"], dtype=object)

    def __rich__(self):
        from rich.table import Table

        table = Table(title="Ingest report", show_lines=False)
        for col in ("file", "status", "item", "kind", "count / reason"):
            table.add_column(col)
        for a in self.added:
            table.add_row(a.file, "[green]added", a.name, a.kind, str(a.count))
        for r in self.repaired:
            table.add_row(r.file, "[yellow]repaired", r.what, "", f"{r.count} {r.detail}".strip())
        for s in self.skipped:
            table.add_row(s.file, "[magenta]skipped", s.item, "", s.reason)
        for s in self.failed:
            table.add_row(s.file, "[red]failed", s.item, "", s.reason)
        return table

    def __str__(self) -> str:
        lines = [f"added {a.name} ({a.kind}): {a.count} from {a.file}" for a in self.added]
        lines += [f"repaired {r.what}: {r.count} in {r.file} {r.detail}".rstrip() for r in self.repaired]
        lines += [f"skipped {s.item} in {s.file}: {s.reason}" for s in self.skipped]
        lines += [f"FAILED {s.file}: {s.reason}" for s in self.failed]
        return "\n".join(lines)
