"""Secret-leak scanner: finds each secret whole AND every piece of it of ``MIN_PIECE`` characters or more.

A secret cut in half (a message shortened before masking, a line wrapped, a value split over two
log records) defeats a masker that only knows whole values; here any 12-character window of a secret
counts as a hit. Matching: every maximal run of secret-alphabet characters in a text is slid over
with a 12-character window looked up in a table of all windows of all secrets; a hit is then
extended to the longest piece of one secret that matches at that place.

Reports never carry a secret: a hit is described by the secret's label, the slice of it that matched
(``client_secret[0:38] of 51``) and its first 4 characters; the context around a hit has every hit in
it replaced by such a description.
"""

from __future__ import annotations

import contextlib
import gzip
import re
import sqlite3
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

MIN_PIECE = 12
SHOWN = 4  # characters of a secret a report may show
# Characters secrets are made of (sandbox secrets: sbx-<kind>-<hex>); a piece of a secret lies inside
# one maximal run of these.
RUN = re.compile(r"[A-Za-z0-9_.~+/=-]{" + str(MIN_PIECE) + ",}")
# Any sandbox credential shape, even one whose value the scan was not given.
SHAPE = re.compile(r"sbx-(?:secret|rt|at|id)-[0-9a-f]{8,}")


@dataclass(frozen=True)
class Hit:
    where: str  # kind of place: "task log files", "metadata DB rows", ...
    item: str  # which file / row / API call
    label: str  # which secret ("client_secret", "access_token #3", ...), or "credential shape"
    start: int  # slice of the secret that matched
    stop: int
    length: int  # the secret's full length
    context: str  # text around the hit, every hit in it replaced by its description

    @property
    def whole(self) -> bool:
        return self.start == 0 and self.stop == self.length

    def describe(self) -> str:
        kind = "WHOLE" if self.whole else f"piece [{self.start}:{self.stop}] ({self.stop - self.start} chars)"
        return f"{self.label} {kind} of {self.length}"


@dataclass
class Scan:
    """Needles (secret value -> label); counts of items searched per place; hits."""

    needles: dict[str, str] = field(repr=False)  # a failing assert prints the Scan: no secrets in it
    searched: dict[str, int] = field(default_factory=dict)
    chars: dict[str, int] = field(default_factory=dict)
    hits: list[Hit] = field(default_factory=list)
    vanished: list[str] = field(default_factory=list)  # files of a live tree deleted before they were read

    def __post_init__(self) -> None:
        short = [label for value, label in self.needles.items() if len(value) < MIN_PIECE]
        if short:
            raise ValueError(f"secrets shorter than {MIN_PIECE} characters cannot be scanned: {short}")
        self._windows: dict[str, list[tuple[str, int]]] = {}
        for value in self.needles:
            for i in range(len(value) - MIN_PIECE + 1):
                self._windows.setdefault(value[i : i + MIN_PIECE], []).append((value, i))

    # ---------------------------------------------------------------- matching
    def find(self, text: str) -> list[tuple[int, int, str, int]]:
        """(text_start, text_stop, secret, secret_start) of every piece found, non-overlapping."""
        found: list[tuple[int, int, str, int]] = []
        windows = self._windows
        for run in RUN.finditer(text):
            s, end = run.start(), run.end()
            i = s
            while i + MIN_PIECE <= end:
                candidates = windows.get(text[i : i + MIN_PIECE])
                if not candidates:
                    i += 1
                    continue
                best = (0, "", 0)
                for value, j in candidates:
                    n = MIN_PIECE
                    while i + n < end and j + n < len(value) and text[i + n] == value[j + n]:
                        n += 1
                    if n > best[0]:
                        best = (n, value, j)
                n, value, j = best
                found.append((i, i + n, value, j))
                i += n
        return found

    def text(self, where: str, item: str, text: str) -> None:
        self.searched[where] = self.searched.get(where, 0) + 1
        self.chars[where] = self.chars.get(where, 0) + len(text)
        spans = self.find(text)
        for m in SHAPE.finditer(text):
            if not any(lo <= m.start() < hi for lo, hi, _, _ in spans):
                spans.append((m.start(), m.end(), "", 0))
        spans.sort()
        for lo, hi, value, j in spans:
            if value:
                label, start, stop, length = self.needles[value], j, j + hi - lo, len(value)
            else:
                label, start, stop, length = "credential shape (unknown value)", 0, hi - lo, hi - lo
            self.hits.append(Hit(where, item, label, start, stop, length, self._context(text, lo, hi, spans)))

    def _context(self, text: str, lo: int, hi: int, spans: list[tuple[int, int, str, int]]) -> str:
        a, b = max(0, lo - 80), min(len(text), hi + 80)
        out, pos = [], a
        for s, e, value, j in spans:
            if e <= a or s >= b:
                continue
            s2, e2 = max(s, a), min(e, b)
            out.append(text[pos:s2] if s2 > pos else "")
            name = self.needles.get(value, "shape") if value else "shape"
            shown = value[:SHOWN] if value else text[s : s + SHOWN]  # a secret's first characters only
            out.append(f"<{name}[{j + s2 - s}:{j + e2 - s}] {shown}...>")
            pos = max(pos, e2)
        out.append(text[pos:b])
        return "".join(out).replace("\n", "\\n")

    def files(self, where: str, root: Path, skip: Iterable[Path] = (), live: bool = False) -> None:
        """Every file under ``root``. ``live``: a running program owns the tree (PostgreSQL's data
        directory), so a file it deletes between the listing and the read is noted in ``vanished``
        rather than failing the scan; a file that no longer exists holds nothing at rest."""
        self.searched.setdefault(where, 0)
        skipped = {p.resolve() for p in skip}
        for path in sorted(p for p in root.rglob("*") if p.is_file()):
            if path.resolve() in skipped or any(parent in skipped for parent in path.resolve().parents):
                continue
            try:
                text = read_any(path)
            except FileNotFoundError:
                if not live:
                    raise
                self.vanished.append(f"{where}: {path.relative_to(root)}")
                continue
            self.text(where, str(path.relative_to(root)), text)

    def database(self, where: str, con: Any) -> None:
        """Every row of every table of a database (DB-API connection: SQLite or PostgreSQL), each row's
        values as text (bytes decoded, gzip opened)."""
        self.searched.setdefault(where, 0)
        cur = con.cursor()
        if isinstance(con, sqlite3.Connection):
            cur.execute("SELECT name FROM sqlite_master WHERE type='table'")
        else:
            cur.execute("SELECT tablename FROM pg_tables WHERE schemaname = current_schema()")
        tables = sorted(r[0] for r in cur.fetchall())
        for table in tables:
            cur.execute(f'SELECT * FROM "{table}"')
            for n, row in enumerate(cur.fetchall()):
                self.text(where, f"{table} row {n}", " | ".join(_as_text(v) for v in row))
        cur.close()

    # ---------------------------------------------------------------- reports
    def hits_in(self, where: str) -> list[Hit]:
        return [h for h in self.hits if h.where == where]

    def table(self) -> str:
        lines = ["| where scanned | items | MB | hits |", "|---|---:|---:|---:|"]
        for where, count in self.searched.items():
            mb = self.chars.get(where, 0) / 1e6
            lines.append(f"| {where} | {count} | {mb:.2f} | {len(self.hits_in(where))} |")
        lines.append(f"| **total** | {sum(self.searched.values())} | | {len(self.hits)} |")
        return "\n".join(lines)

    def report(self, limit: int = 200) -> str:
        """One line per distinct (place, item, secret slice), with how often it occurred."""
        groups: dict[tuple[str, str, str], list[Hit]] = {}
        for h in self.hits:
            groups.setdefault((h.where, h.item, h.describe()), []).append(h)
        lines = []
        for (where, item, what), hits in list(groups.items())[:limit]:
            times = f" (x{len(hits)})" if len(hits) > 1 else ""
            lines.append(f"{where} | {item} | {what}{times} | ...{hits[0].context}...")
        if len(groups) > limit:
            lines.append(f"... and {len(groups) - limit} more")
        return "\n".join(lines)


def _as_text(value: object) -> str:
    if isinstance(value, memoryview):
        value = value.tobytes()
    if isinstance(value, bytes):
        if value[:2] == b"\x1f\x8b":
            with contextlib.suppress(OSError, EOFError):
                value = gzip.decompress(value)
        return value.decode("latin-1")
    return str(value)


def read_any(path: Path) -> str:
    """A file's text (gzip decoded; bytes that are not UTF-8 kept as latin-1 so nothing is lost)."""
    data = path.read_bytes()
    if data[:2] == b"\x1f\x8b":
        with contextlib.suppress(OSError, EOFError):
            data = gzip.decompress(data)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return data.decode("latin-1")
