"""Issue 13, defects 7 and 9: how the source is read, which paths may alias, look-alike numbers."""

from __future__ import annotations

import gzip
import json
import os
from pathlib import Path

import pytest

from airflow_provider_eshopbox.exceptions import EshopboxConfigError
from airflow_provider_eshopbox.hooks.eshopbox import EshopboxHook
from airflow_provider_eshopbox.operators.create_orders import EshopboxCreateOrdersOperator
from airflow_provider_eshopbox.order_validation import validate_order
from tests.create_orders.test_create_orders import _SAMPLE, DAG_ID, _read_jsonl
from tests.dagtest import run_dag

BOM = b"\xef\xbb\xbf"
WIDE = "\uff2c\uff2f\uff2f\uff2b-4"  # fullwidth LOOK-4


def test_unicode_separators_inside_strings_bom_and_crlf(conn, airflow_db, tmp_path, capfd):
    """U+2028, U+2029 and U+0085 are text inside a JSON string, not line ends (str.splitlines)."""
    sb = conn
    orders = [_SAMPLE(f"SEP-{i}") for i in range(4)]
    for order, char in zip(orders, ("\u2028", "\u2029", "\u0085", "\u2028\u2029"), strict=True):
        order["shippingAddress"]["addressLine1"] = f"Flat 4{char}12 MG Road"
    # A raw form feed inside a string is invalid JSON (RFC 8259): one row, rejected with its own line number.
    raw_ff = json.dumps(_SAMPLE("SEP-FF")).replace("Asha Rao", "Asha\x0cRao", 1)
    lines = [json.dumps(order, ensure_ascii=False) for order in orders[:3]] + [raw_ff, json.dumps(orders[3])]
    source = tmp_path / "in" / "orders.jsonl"
    source.parent.mkdir()
    source.write_bytes(BOM + "\r\n".join(lines).encode() + b"\r\n")  # Excel-style: BOM and CRLF
    rejects = f"file://{tmp_path}/out/rejects.jsonl"
    conf = {"source": f"file://{source}", "rejects": rejects, "generate_sample": False, "max_rejected": 1}
    result = run_dag(DAG_ID, capfd, run_conf=conf)
    assert result.state == "success"
    manifest = result.returns["push_orders"]
    assert (manifest["created"], manifest["rejected"], manifest["ambiguous"]) == (4, 1, 0)
    [entry] = _read_jsonl(rejects)
    assert (entry["row"], entry["customerOrderNumber"], entry["order"]) == (3, None, raw_ff)
    assert entry["reasons"][0].startswith("line 4 is not valid JSON: Invalid control character at: line 1")
    assert {k: v for k, v in sb.orders_created().items() if k.startswith("SEP-")} == {
        f"SEP-{i}": 1 for i in range(4)
    }
    with EshopboxHook() as hook:  # stored with the separators intact
        for order in orders:
            stored = hook.get_order(order["customerOrderNumber"])
            assert stored["shippingAddress"]["addressLine1"] == order["shippingAddress"]["addressLine1"]


def test_lookalike_order_numbers_are_all_rejected(conn, tmp_path):
    """ "LOOK-1", "look-1 " and " LOOK-1" may be one order to Eshopbox: none is sent. An exact repeat
    keeps its first row (unchanged rule)."""
    sb = conn
    numbers = ["LOOK-1", "look-1 ", " LOOK-1", "LOOK-2", "LOOK-2", "LOOK-3", WIDE, "LOOK-4"]
    orders = [_SAMPLE(number) for number in numbers]
    rejects = f"file://{tmp_path}/rejects.jsonl"
    operator = EshopboxCreateOrdersOperator(task_id="push", source=orders, rejects=rejects, max_rejected=9)
    manifest = operator.execute({})
    assert (manifest["created"], manifest["existing"], manifest["rejected"]) == (2, 0, 6)

    def lookalike(row: int, *others: int) -> str:
        shown = ", ".join(f"{numbers[i]!r} (row {i})" for i in others)
        return (
            f"customerOrderNumber {numbers[row]!r} differs only in case, spacing or Unicode form from "
            f"{shown} in this input; Eshopbox may take them for one order, so none of them is sent: "
            "keep one row, or make the numbers really distinct"
        )

    def padded(row: int) -> str:
        return (
            f"customerOrderNumber {numbers[row]!r} has leading or trailing whitespace: remove it in the "
            "source (Eshopbox may trim it, and the order could then not be found again by its number)"
        )

    assert [(e["row"], e["customerOrderNumber"], e["reasons"]) for e in _read_jsonl(rejects)] == [
        (0, "LOOK-1", [lookalike(0, 1, 2)]),
        (1, "look-1 ", [padded(1), lookalike(1, 0, 2)]),
        (2, " LOOK-1", [padded(2), lookalike(2, 0, 1)]),
        (4, "LOOK-2", ["duplicate customerOrderNumber 'LOOK-2' in this input (first at row 3)"]),
        (6, WIDE, [lookalike(6, 7)]),
        (7, "LOOK-4", [lookalike(7, 6)]),
    ]
    sent = {k: v for k, v in sb.orders_created().items() if k.strip().casefold().startswith("look-")}
    assert sent == {"LOOK-2": 1, "LOOK-3": 1}


def _aliases(tmp_path: Path) -> dict[str, tuple[dict[str, str], str]]:
    src = f"file://{tmp_path}/in/orders.jsonl"
    link = tmp_path / "link"
    link.symlink_to(tmp_path / "in")
    return {
        "rejects-is-source": ({"rejects": src}, r"rejects='.*/in/orders.jsonl' is the same file as source="),
        "rejects-is-source-respelled": (
            {"rejects": f"file://{tmp_path}/in/../in/./orders.jsonl"},
            r"rejects='.*/in/\.\./in/\./orders.jsonl' is the same file as source='.*/in/orders.jsonl'",
        ),
        "rejects-is-source-via-symlink": (
            {"rejects": f"file://{link}/orders.jsonl"},
            r"rejects='.*/link/orders.jsonl' is the same file as source=",
        ),
        "ambiguous-is-source": ({"ambiguous": src}, r"ambiguous='.*' is the same file as source="),
        "ambiguous-is-rejects": (
            {"ambiguous": f"file://{tmp_path}/out/rejects.jsonl"},
            r"ambiguous='.*/out/rejects.jsonl' is the same file as rejects=",
        ),
        "derived-ambiguous-is-source": (
            {"rejects": f"file://{tmp_path}/in/orders.jsonl".replace("orders.jsonl", "r.jsonl"),
             "source": f"file://{tmp_path}/in/r.ambiguous.jsonl"},
            r"ambiguous \(derived from rejects\)='.*/in/r.ambiguous.jsonl' is the same file as source=",
        ),
    }  # fmt: skip


@pytest.mark.parametrize(
    "case",
    [
        "rejects-is-source",
        "rejects-is-source-respelled",
        "rejects-is-source-via-symlink",
        "ambiguous-is-source",
        "ambiguous-is-rejects",
        "derived-ambiguous-is-source",
    ],
)
def test_an_output_naming_an_input_or_other_output_is_refused(conn, tmp_path, case):
    sb = conn
    kwargs, match = _aliases(tmp_path)[case]
    (tmp_path / "in").mkdir()
    for name in ("orders.jsonl", "r.ambiguous.jsonl"):
        (tmp_path / "in" / name).write_text(json.dumps(_SAMPLE("ALIAS-1")) + "\n")
    before = {p.name: p.read_bytes() for p in (tmp_path / "in").iterdir()}
    arguments = {
        "source": f"file://{tmp_path}/in/orders.jsonl",
        "rejects": f"file://{tmp_path}/out/rejects.jsonl",
        **kwargs,
    }
    requests = sb.stats()["requests"]
    operator = EshopboxCreateOrdersOperator(task_id="push", **arguments)
    with pytest.raises(EshopboxConfigError, match=match + ".*give .* a path of its own"):
        operator.execute({})
    assert sb.stats()["requests"] == requests
    assert {p.name: p.read_bytes() for p in (tmp_path / "in").iterdir()} == before
    assert not (tmp_path / "out").exists()
    assert "ALIAS-1" not in sb.orders_created()


def _write(path: Path, data: bytes) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return f"file://{path}"


GOOD = (json.dumps(_SAMPLE("UNREAD-1")) + "\n").encode()
SOURCES = {
    "directory": (lambda d: f"file://{d}", r"source='file://.*/in' is (an existing )?(a )?directory"),
    "gz-not-gzip": (
        lambda d: _write(d / "orders.jsonl.gz", GOOD),
        r"source='.*orders.jsonl.gz' ends in .gz but is not a complete gzip file \(BadGzipFile: .*\): "
        r"compress it with gzip, or drop the .gz suffix",
    ),
    "gz-truncated": (
        lambda d: _write(d / "orders.jsonl.gz", gzip.compress(GOOD * 50)[:-12]),
        r"source='.*orders.jsonl.gz' ends in .gz but is not a complete gzip file \(EOFError",
    ),
    "latin-1": (
        lambda d: _write(d / "orders.jsonl", GOOD + '{"city": "Bogotá"}\n'.encode("latin-1")),
        r"source='.*orders.jsonl' is not UTF-8 text \(byte 0xe1 on line 2\): re-export it as UTF-8",
    ),
    "gzip-without-gz-suffix": (
        lambda d: _write(d / "orders.jsonl", gzip.compress(GOOD)),
        r"is not UTF-8 text \(byte 0x8b on line 1\): it looks gzip-compressed: give it a .gz suffix",
    ),
    "utf-16": (
        lambda d: _write(d / "orders.jsonl", GOOD.decode().encode("utf-16")),
        r"is not UTF-8 text \(byte 0xff on line 1\): it looks UTF-16: re-export it as UTF-8",
    ),
}


@pytest.mark.parametrize("case", list(SOURCES))
def test_unreadable_source_is_a_config_error_before_any_request(conn, tmp_path, case):
    sb = conn
    make, match = SOURCES[case]
    (tmp_path / "in").mkdir()
    source = make(tmp_path / "in")
    requests = sb.stats()["requests"]
    operator = EshopboxCreateOrdersOperator(
        task_id="push", source=source, rejects=f"file://{tmp_path}/out/rejects.jsonl"
    )
    with pytest.raises(EshopboxConfigError, match=match) as caught:
        operator.execute({})
    assert caught.value.field == "source"
    assert sb.stats()["requests"] == requests
    assert not (tmp_path / "out").exists()
    assert "UNREAD-1" not in sb.orders_created()


def test_nan_and_infinity_lines_are_rejected_not_sent(conn, tmp_path):
    """Python's json accepts NaN/Infinity; JSON (and Eshopbox) does not."""
    nan = json.dumps(dict(_SAMPLE("NAN-1"), taxAmount=float("nan")))
    source = tmp_path / "in.jsonl"
    source.write_text(nan + "\n" + json.dumps(_SAMPLE("NAN-2")) + "\n")
    rejects = f"file://{tmp_path}/rejects.jsonl"
    operator = EshopboxCreateOrdersOperator(
        task_id="push", source=f"file://{source}", rejects=rejects, max_rejected=1
    )
    assert operator.execute({})["created"] == 1
    [entry] = _read_jsonl(rejects)
    assert (entry["row"], entry["order"]) == (0, nan)
    assert entry["reasons"] == ["line 1 is not valid JSON: NaN is not a JSON number"]
    assert "NAN-1" not in conn.orders_created() and conn.orders_created()["NAN-2"] == 1


def test_list_source_with_values_json_cannot_carry_is_rejected_and_written(conn, tmp_path):
    """A list source can hold NaN, datetimes or unpaired surrogates: rejected, and the rejects file
    is still written (it used to crash after the push)."""
    import datetime

    orders = [
        dict(_SAMPLE("LIST-1"), subtotal=float("inf")),
        dict(_SAMPLE("LIST-2"), orderDate=datetime.date(2026, 11, 1)),
        _SAMPLE("LIST-3"),
    ]
    orders[2]["shippingAddress"]["customerName"] = "Asha \ud800"
    rejects = f"file://{tmp_path}/rejects.jsonl"
    operator = EshopboxCreateOrdersOperator(task_id="push", source=orders, rejects=rejects, max_rejected=3)
    assert operator.execute({})["rejected"] == 3
    entries = _read_jsonl(rejects)
    assert [e["customerOrderNumber"] for e in entries] == ["LIST-1", "LIST-2", "LIST-3"]
    assert entries[0]["reasons"][0] == "subtotal must be a number, got inf"
    assert entries[1]["reasons"] == [
        "the order cannot be sent as JSON (Object of type date is not JSON serializable): use only "
        "strings, finite numbers, booleans, null, lists and objects"
    ]
    assert entries[2]["reasons"] == [
        "the order holds an unpaired UTF-16 surrogate '\\ud800', which is not text: fix the source's encoding"
    ]
    assert not {"LIST-1", "LIST-2", "LIST-3"} & set(conn.orders_created())


def test_validation_follows_the_servers_rules_for_blanks_numbers_and_order_numbers():
    assert validate_order(dict(_SAMPLE("V-1"), paymentType=" \t")) == ["paymentType is required"]
    assert validate_order(dict(_SAMPLE("V-2"), subtotal=" 12.50 ", taxAmount="-0", orderTotal="1e3")) == []
    for bad in ("NaN", "inf", "1_000", "١٢", "\uff11\uff12", "0x1A", ""):
        reasons = validate_order(dict(_SAMPLE("V-3"), taxAmount=bad))
        assert reasons == (
            ["taxAmount is required"] if bad == "" else [f"taxAmount must be a number, got {bad!r}"]
        )
    assert validate_order(_SAMPLE("V-\u20284")) == [
        "customerOrderNumber 'V-\\u20284' contains control or invisible characters (U+2028): remove them in "
        "the source"
    ]
    assert validate_order(_SAMPLE(" ")) == ["customerOrderNumber is required"]


def test_max_rejected_with_a_non_ascii_digit_is_a_config_error(conn, tmp_path):
    operator = EshopboxCreateOrdersOperator(
        task_id="push", source=[_SAMPLE("SUP-1")], rejects=f"file://{tmp_path}/r.jsonl", max_rejected="²"
    )
    with pytest.raises(EshopboxConfigError, match="max_rejected must be a non-negative integer, got '²'"):
        operator.execute({})
    assert os.listdir(tmp_path) == []
