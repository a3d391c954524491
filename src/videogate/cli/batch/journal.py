"""The batch journal and the results manifest, fsynced around every create, replayed on resume."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

JOURNAL = "journal.jsonl"


RESULTS = "results.jsonl"


@dataclass
class LineState:
    """What the journal knows about one line."""

    digest: str | None = None
    key: str | None = None
    submitted_at: float | None = None
    request: dict[str, Any] = field(default_factory=dict)  # the body without content
    body: dict[str, Any] | None = None
    id: str | None = None
    result: dict[str, Any] | None = None


class Journal:
    """Append-only JSON lines, each fsynced before the step it announces."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.header: dict[str, Any] | None = None
        self.lines: dict[int, LineState] = {}
        torn = False
        if path.exists():
            self._load()
            with path.open("rb") as f:
                f.seek(0, os.SEEK_END)
                if f.tell():
                    f.seek(-1, os.SEEK_END)
                    torn = f.read(1) != b"\n"
        self._file = path.open("a", encoding="utf-8")
        if torn:  # end the torn record, so the next one starts on its own line
            self._file.write("\n")

    def _load(self) -> None:
        for raw in self.path.read_text(encoding="utf-8").splitlines():
            try:
                event = json.loads(raw)
            except json.JSONDecodeError:
                continue  # a line torn by a crash mid-write: its step never happened
            if isinstance(event, dict):
                self._apply(event)

    def _apply(self, event: dict[str, Any]) -> None:
        kind = event.get("event")
        if kind == "batch":
            self.header = self.header or event
            return
        line = event.get("line")
        if not isinstance(line, int):
            return
        state = self.lines.setdefault(line, LineState())
        if kind == "submit":
            self.lines[line] = LineState(
                digest=event.get("digest"),
                key=event.get("key"),
                submitted_at=event.get("at"),
                request=event.get("request") or {},
                body=event.get("body"),
            )
        elif kind == "created":
            state.id = event.get("id")
        elif kind == "done":
            state.result = event.get("result")

    def record(self, event: dict[str, Any]) -> None:
        self._file.write(json.dumps(event, ensure_ascii=False) + "\n")
        self._file.flush()
        os.fsync(self._file.fileno())
        self._apply(event)

    def close(self) -> None:
        self._file.close()

    def claimed_ids(self) -> set[str]:
        return {s.id for s in self.lines.values() if s.id}


def write_results(path: Path, rows: list[dict[str, Any]]) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    with tmp.open("w", encoding="utf-8") as f:
        for row in rows:
            f.write(json.dumps(row, ensure_ascii=False) + "\n")
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
