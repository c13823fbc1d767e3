"""The scanner itself (no deployment): it finds whole secrets, pieces of 12+ characters, shapes, in files,
gzip and SQLite; it never reports a secret; pieces shorter than 12 are not hits."""

from __future__ import annotations

import gzip
import sqlite3
from pathlib import Path

import pytest

from deploy_tests.leakscan import MIN_PIECE, Scan

SECRET = "sbx-secret-" + "0123456789abcdef" * 2 + "01234567"  # 51 chars, like the sandbox's
TOKEN = "sbx-at-" + "fedcba98" * 6


def test_whole_and_cut_secrets_are_hits(tmp_path: Path) -> None:
    logs = tmp_path / "logs"
    logs.mkdir()
    (logs / "whole.log").write_text(f"Authorization: Bearer {TOKEN}\n")
    # A server message cut at some length, the way a 300-character limit cuts an echoed secret.
    (logs / "cut.log").write_text(f'{{"event": "HTTP 401: bad client {SECRET[:30]}..."}}\n')
    (logs / "split.log").write_text(f"part 1: {SECRET[:20]}\npart 2: {SECRET[20:]}\n")
    (logs / "short.log").write_text(f"11 chars is no hit: {SECRET[-(MIN_PIECE - 1) :]}\n")
    (logs / "masked.log").write_text("client_secret=*** Bearer ***\n")
    (tmp_path / "out.jsonl.gz").write_bytes(gzip.compress(f'{{"t": "{TOKEN[5:40]}"}}'.encode()))
    scan = Scan({SECRET: "client_secret", TOKEN: "access_token #1"})
    scan.files("logs", logs)
    scan.files("outputs", tmp_path, skip=[logs])
    got = sorted((h.item, h.label, h.start, h.stop) for h in scan.hits)
    assert got == [
        ("cut.log", "client_secret", 0, 30),
        ("out.jsonl.gz", "access_token #1", 5, 40),
        ("split.log", "client_secret", 0, 20),
        ("split.log", "client_secret", 20, 51),
        ("whole.log", "access_token #1", 0, len(TOKEN)),
    ]
    assert [h.whole for h in scan.hits if h.item == "whole.log"] == [True]
    assert scan.searched == {"logs": 5, "outputs": 1}
    second_half = next(h for h in scan.hits if h.item == "split.log" and h.start == 20)
    assert f"<client_secret[20:51] {SECRET[:4]}...>" in second_half.context
    for hit in scan.hits:  # reports show at most the first 4 characters of a secret
        for value in (SECRET, TOKEN):
            assert not any(value[i : i + 8] in hit.context for i in range(len(value) - 7))
        assert not any(value[i : i + 8] in scan.report() for i in range(len(value) - 7))
        assert not any(value[i : i + 8] in repr(scan) for i in range(len(value) - 7))


def test_adjacent_secrets_and_unknown_shapes(tmp_path: Path) -> None:
    rt = "sbx-rt-" + "ab" * 20
    scan = Scan({SECRET: "client_secret", rt: "refresh_token"})
    unknown = "sbx-id-" + "9" * 32
    scan.text("xcom", "row 1", f"{SECRET}{rt[:15]} and {unknown}")
    assert [(h.label, h.start, h.stop) for h in scan.hits] == [
        ("client_secret", 0, 51),
        ("refresh_token", 0, 15),
        ("credential shape (unknown value)", 0, len(unknown)),
    ]


def test_sqlite_rows_are_scanned(tmp_path: Path) -> None:
    db = tmp_path / "x.db"
    con = sqlite3.connect(db)
    con.execute("CREATE TABLE xcom (key TEXT, value BLOB)")
    con.execute("INSERT INTO xcom VALUES (?, ?)", ("return_value", f'{{"msg": "{SECRET[10:40]}"}}'.encode()))
    con.execute("INSERT INTO xcom VALUES (?, ?)", ("clean", b'{"rows": 3}'))
    con.commit()
    scan = Scan({SECRET: "client_secret"})
    scan.database("db", con)
    con.close()
    assert [(h.item, h.start, h.stop) for h in scan.hits] == [("xcom row 0", 10, 40)]
    assert scan.searched["db"] == 2


def test_too_short_secret_is_refused() -> None:
    with pytest.raises(ValueError, match="shorter than 12"):
        Scan({"abc": "pin"})
