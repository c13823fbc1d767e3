"""One writer per output format, behind one call: ``RowSpool.write_to(destination, writer)``.

Every *ToStorage operator resolves its output once, before any request (``resolve_output``: the
destination, the format, pyarrow present, the place writable) and hands the writer to the spool,
which feeds it the de-duplicated rows' JSON lines in file order and an open binary file from
``atomic_open``. No operator looks at the format.

- ``jsonl`` (the default): each line as the API sent it; a ``.gz`` destination is one gzip member
  (``atomic_open`` compresses, with no time in its header).
- ``parquet`` (extra ``[parquet]``): columns typed from the stream's declared schema
  (``schemas.py``), never inferred, so every run has the same schema. A row group of
  ``ROW_GROUP_ROWS`` rows at a time (memory flat in rows), parsed by pyarrow's JSON reader into
  the columns' wire types on a second thread while the spool reads the next part, then cast in
  C++; a part the reader cannot take exactly (an unknown key, a misfit) goes value by value
  through the converters below, which decide. Money is parsed from the JSON text as decimals,
  never through a float. Keys the schema does not declare go
  to ``_extra`` (a JSON object per row) and are counted in the manifest; a value that does not fit
  its column fails the write naming the stream, field, row and value, and nothing is written.
  Same rows, same pyarrow: same bytes.
"""

from __future__ import annotations

import hashlib
import itertools
import operator
import os
import re
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from decimal import Decimal
from typing import IO, TYPE_CHECKING, Any, Protocol

from airflow_provider_eshopbox import api
from airflow_provider_eshopbox.exceptions import EshopboxConfigError, EshopboxDataError
from airflow_provider_eshopbox.schemas import MONEY_PRECISION, Column, StreamSchema, schema_of

if TYPE_CHECKING:
    from airflow.sdk import ObjectStoragePath

FORMATS = ("jsonl", "parquet")
PARQUET_SUFFIX = ".parquet"
EXTRA_COLUMN = "_extra"
#: Rows per Parquet row group (DuckDB and Spark split work by row group). 16,384 wrote 200k orders
#: with 11% less CPU than 4,096 (a row group's pages, dictionaries and statistics cost per group)
#: and a 1M-row write at the same peak RSS (4,096's footer metadata grows with the rows instead).
ROW_GROUP_ROWS = 16_384
_READ_ROWS = 2_048  # rows parsed at a time: the JSON reader's peak grows with its block (4096: +10 MB)
#: Blocks each part is parsed in, on Arrow's threads: the parse is the write's longest step, and a
#: second core (idle while the spool merges) halves it; the CPU is the same.
_READ_BLOCKS = 2
_WRITE_CHUNK = 1 << 20
_BATCH_ROWS = 512  # rows decoded to Python objects at a time on the value-by-value path
_INDEX = re.compile(r"\[\d+\]")
#: The Python type of the values pyarrow takes as they are, per declared type.
_AS_IS: dict[str, type] = {
    "string": str,
    "integer": int,
    "boolean": bool,
}  # int: not bool; too large: refused


class RowWriter(Protocol):
    """Writes the spool's lines (each one JSON row and its newline, in file order) to ``out``."""

    format: str

    def write(self, lines: Iterable[bytes], out: IO[bytes]) -> int: ...

    def manifest(self) -> dict[str, Any]: ...


class JsonLinesWriter:
    """The lines as they are, a megabyte per write, written on a second thread (gzip releases the GIL)."""

    format = "jsonl"

    def write(self, lines: Iterable[bytes], out: IO[bytes]) -> int:
        count = size = 0
        chunk: list[bytes] = []
        with _Behind(out.write) as writer:
            for line in lines:
                chunk.append(line)
                count += 1
                size += len(line)
                if size >= _WRITE_CHUNK:  # few large writes: each write through fsspec costs
                    writer.submit(b"".join(chunk))
                    chunk, size = [], 0
            writer.submit(b"".join(chunk))
        return count

    def manifest(self) -> dict[str, Any]:
        return {"format": self.format}


class _Behind:
    """Hands each chunk to ``work`` on one thread, one chunk at a time: gzip compresses there (it
    releases the GIL) while the next chunk's rows are merged and read back here, instead of one
    after the other. In order, so the bytes are the same."""

    def __init__(self, work: Callable[[Any], Any]) -> None:
        self._work = work
        self._thread = ThreadPoolExecutor(1, "eshopbox-write")
        self._pending: Future[Any] | None = None

    def submit(self, chunk: Any) -> None:
        if self._pending is not None:
            self._pending.result()  # one chunk in flight at most; its error surfaces here
        self._pending = self._thread.submit(self._work, chunk)

    def __enter__(self) -> _Behind:
        return self

    def __exit__(self, *exc: object) -> None:
        try:
            if self._pending is not None:
                self._pending.result()
        finally:
            self._thread.shutdown()


class ParquetWriter:
    """Typed Parquet of one stream's declared schema (module doc); ``extra_fields`` counts unknown keys."""

    format = "parquet"

    def __init__(self, schema: StreamSchema) -> None:
        import msgspec

        self.schema = schema
        self.arrow_schema = arrow_schema(schema)
        self.fingerprint = schema_fingerprint(schema)
        self.extra_fields: dict[str, int] = {}
        self._decode = msgspec.json.Decoder(float_hook=Decimal).decode  # money never through a float
        self._encode = msgspec.json.Encoder(decimal_format="number", order="sorted").encode
        self._converters = {c.name: _converter(c, c.name) for c in schema.columns}
        self._names = frozenset(schema.names())
        self._order = schema.names()
        self._wire = _wire_schema(schema)
        self._unsafe = _reader_unsafe(schema)

    def write(self, lines: Iterable[bytes], out: IO[bytes]) -> int:
        """A second thread parses each part and writes each row group (long calls that release the
        GIL); this one gathers the parts and casts them (many short calls, which would each wait for
        the GIL there while the spool merges here), one part behind the parse."""
        import pyarrow as pa
        import pyarrow.parquet as pq

        metadata = {"eshopbox.stream": self.schema.stream, "eshopbox.schema": self.fingerprint}
        schema = self.arrow_schema.with_metadata(metadata)
        batches: list[Any] = []
        count = 0
        with (
            pq.ParquetWriter(out, schema, compression="zstd", store_schema=True) as parquet,
            ThreadPoolExecutor(1, "eshopbox-write") as worker,
        ):
            written: Future[None] | None = None

            def cast(parsed: Future[tuple[list[bytes], Any]], last: bool) -> None:
                """A parsed part into record batches; a row group to the writer when one is full."""
                nonlocal written
                part, table = parsed.result()
                batch = self._cast(table, schema, pa)
                # value by value where the reader cannot: the converters decide, and name a misfit
                batches.extend(self._values(part, schema, pa) if batch is None else [batch])
                if batches and (last or sum(map(len, batches)) >= ROW_GROUP_ROWS):
                    if written is not None:
                        written.result()
                    group = pa.Table.from_batches(batches)
                    written = worker.submit(parquet.write_table, group, row_group_size=ROW_GROUP_ROWS)
                    batches.clear()

            pending: Future[tuple[list[bytes], Any]] | None = None
            rows = iter(lines)
            while part := list(itertools.islice(rows, _READ_ROWS)):
                count += len(part)
                parsing = worker.submit(self._parse, part)
                if pending is not None:
                    cast(pending, last=False)
                pending = parsing
            if pending is not None:
                cast(pending, last=True)
            if written is not None:
                written.result()
        return count

    def _parse(self, lines: list[bytes]) -> tuple[list[bytes], Any]:
        """The part and its table parsed by pyarrow's JSON reader into the wire types, or None when
        the reader cannot take it exactly (a string where money is, an escaped key, a misfit)."""
        import pyarrow as pa
        import pyarrow.json as pj

        if self._wire is None:
            return lines, None
        text = b"".join(lines)
        if self._unsafe(text):
            return lines, None
        block = max(len(text) // _READ_BLOCKS, *map(len, lines)) + 1  # a row never straddles two
        try:
            table = pj.read_json(
                pa.py_buffer(text),
                read_options=pj.ReadOptions(use_threads=True, block_size=block),
                parse_options=pj.ParseOptions(explicit_schema=self._wire, unexpected_field_behavior="infer"),
                memory_pool=pa.system_memory_pool(),  # mimalloc would keep the parse's peak resident
            )
        except pa.ArrowException:
            return lines, None
        return lines, table if table.num_rows == len(lines) else None

    def _cast(self, table: Any, schema: Any, pa: Any) -> Any:
        """The parsed table (None: not parsed) cast to the declared types, or None when a value does not
        fit exactly (an undeclared key, another JSON type, out of range): the value-by-value path decides."""
        if table is None or not self._names.issuperset(table.column_names):
            return None
        arrays = []
        for column, field in zip(self.schema.columns, schema, strict=False):
            wire = table.column(column.name).combine_chunks() if column.name in table.column_names else None
            array = _from_wire(column, field.type, wire, table.num_rows)
            if array is None:
                return None
            arrays.append(array)
        arrays.append(pa.nulls(table.num_rows, pa.string()))  # no undeclared key: no _extra
        return pa.RecordBatch.from_arrays(arrays, schema=schema)

    def _values(self, lines: list[bytes], schema: Any, pa: Any) -> list[Any]:
        """Record batches of ``lines`` converted value by value, ``_BATCH_ROWS`` rows of objects at a time."""
        return [
            self._batch(lines[i : i + _BATCH_ROWS], schema, pa) for i in range(0, len(lines), _BATCH_ROWS)
        ]

    def _batch(self, lines: list[bytes], schema: Any, pa: Any) -> Any:
        """One record batch of ``lines``, each value converted to its declared column type.

        A column whose values are all of the one JSON type it takes (strings, say) goes to pyarrow as
        it is; any other column, or one pyarrow refuses, is converted value by value, which also
        names the row of a value that does not fit.
        """
        rows = [self._decode(line) for line in lines]
        for row in rows:
            if type(row) is not dict:
                raise self._error(row, _Misfit("", row, "is not a JSON object"))
        extras: list[dict[str, Any] | None] = [None] * len(rows)
        arrays = []
        for column, field, values in zip(
            self.schema.columns, schema, _pluck(rows, self._order), strict=False
        ):
            array = self._fast(column, field.type, values, extras, column.name)
            arrays.append(array if array is not None else self._slow(column, field, values, rows, extras, pa))
        for index, row in enumerate(rows):
            unknown = row.keys() - self._names
            if unknown:
                extras[index] = {**(extras[index] or {}), **{key: row[key] for key in unknown}}
        texts = []
        for extra in extras:
            if extra:
                for key in extra:
                    name = _INDEX.sub("[]", key)
                    self.extra_fields[name] = self.extra_fields.get(name, 0) + 1
            texts.append(self._encode(extra).decode() if extra else None)
        arrays.append(pa.array(texts, type=pa.string()))
        return pa.RecordBatch.from_arrays(arrays, schema=schema)

    def _fast(
        self,
        column: Column,
        arrow: Any,
        values: Sequence[Any],
        extras: list[dict[str, Any] | None],
        path: str,
    ) -> Any:
        """The column converted by pyarrow, a whole batch at once, when every value is of the JSON type
        it takes; None when one is not (or pyarrow refuses one): the value-by-value path decides."""
        import pyarrow as pa

        kinds = set(map(type, values)) - {type(None)}
        kind, array = column.type, None
        try:
            if kind in _AS_IS and kinds <= {_AS_IS[kind]}:
                array = pa.array(values, type=arrow)
            elif kind == "flag" and kinds <= {str, int, bool} and set(values) <= _FLAG_VALUES:
                array = pa.array([None if v is None else _FLAGS[v] for v in values], type=arrow)
            elif kind == "decimal" and kinds <= {Decimal}:
                array = pa.array(values, type=arrow)  # refuses a value needing rounding or more digits
            elif kind == "timestamp" and kinds <= {int if column.zone == api.TIME_EPOCH_MS else str}:
                array = _instants(column, arrow, pa.array(values, _wire_type(column)))
            elif kind == "object" and column.fields and kinds <= {dict}:
                array = self._fast_struct(column, arrow, values, extras, path)
        except (pa.ArrowException, OverflowError):
            return None
        if array is not None and array.null_count and not column.nullable:
            return None
        return array

    def _fast_struct(
        self,
        column: Column,
        arrow: Any,
        values: Sequence[Any],
        extras: list[dict[str, Any] | None],
        path: str,
    ) -> Any:
        import pyarrow as pa

        known = frozenset(f.name for f in column.fields)
        for index, value in enumerate(values):
            if value and value.keys() - known:  # undeclared keys go to _extra
                extra = extras[index] = extras[index] or {}
                extra.update({f"{path}.{k}": value[k] for k in value.keys() - known})
        children = []
        names = tuple(f.name for f in column.fields)
        for field, child, got in zip(column.fields, arrow, _pluck(values, names), strict=True):
            array = self._fast(field, child.type, got, extras, f"{path}.{field.name}")
            if array is None:
                return None
            children.append(array)
        mask = pa.array([v is None for v in values], type=pa.bool_())
        return pa.StructArray.from_arrays(children, fields=list(arrow), mask=mask)

    def _slow(
        self,
        column: Column,
        field: Any,
        values: Sequence[Any],
        rows: list[Any],
        extras: list[dict[str, Any] | None],
        pa: Any,
    ) -> Any:
        convert, scratch, converted = self._converters[column.name], {}, []
        for index, value in enumerate(values):
            try:
                converted.append(convert(value, scratch))
            except _Misfit as misfit:
                raise self._error(rows[index], misfit) from None
            if scratch:
                extras[index] = {**(extras[index] or {}), **scratch}
                scratch = {}
        try:
            return pa.array(converted, type=field.type)
        except (pa.ArrowException, OverflowError) as problem:
            raise EshopboxDataError(
                f"{self.schema.stream}: column {column.name} does not fit {field.type}: {problem}; "
                "nothing was written"
            ) from None

    def _error(self, row: Any, misfit: _Misfit) -> EshopboxDataError:
        ids = ", ".join(f"{k}={row.get(k)!r}" for k in self.schema.key) if isinstance(row, dict) else "?"
        shown = repr(misfit.value)
        return EshopboxDataError(
            f"{self.schema.stream} row {ids}: {misfit.path or 'the row'} {misfit.reason} "
            f"(value {shown[:120]}{'...' if len(shown) > 120 else ''}); it does not fit the Parquet column "
            "declared in schemas.py, so nothing was written. Fix the row in Eshopbox, or correct the "
            "declaration (and its api.py ASSUMPTION) if the API sends it so, then re-run the task"
        )

    def manifest(self) -> dict[str, Any]:
        return {
            "format": self.format,
            "schema_fingerprint": self.fingerprint,
            "extra_fields": dict(sorted(self.extra_fields.items())),
        }


@dataclass(frozen=True)
class Output:
    """Where a *ToStorage operator writes, and the writer of its format (``resolve_output``)."""

    destination: ObjectStoragePath
    writer: RowWriter

    def manifest(self, rows: int) -> dict[str, Any]:
        """The manifest's part about the file: path, rows and what the format reports."""
        return {"path": str(self.destination), "rows": rows, **self.writer.manifest()}


def resolve_output(destination: Any, format: Any, stream: str) -> Output:
    """Destination, format and a writability check, all before any request (EshopboxConfigError).

    ``format`` None or "": ``parquet`` when the destination ends in ``.parquet``, else ``jsonl``.
    """
    from airflow_provider_eshopbox.sync.destination import check_writable, is_gzip, resolve_destination

    path = resolve_destination(destination)
    name = path.name.lower()
    chosen = format.strip().lower() if isinstance(format, str) and format.strip() else None
    if format not in (None, "") and chosen not in FORMATS:
        raise EshopboxConfigError(
            f"format must be one of {', '.join(FORMATS)}, got {format!r}", field="format"
        )
    chosen = chosen or ("parquet" if name.endswith(PARQUET_SUFFIX) else "jsonl")
    if chosen == "parquet" and (is_gzip(path) or name.endswith((".jsonl", ".json", ".ndjson"))):
        raise EshopboxConfigError(
            f"format='parquet' but destination={str(path)!r} is named as JSON Lines; Parquet compresses "
            f"its own columns (zstd): name it ...{PARQUET_SUFFIX}",
            field="destination",
        )
    if chosen == "jsonl" and name.endswith(PARQUET_SUFFIX):
        raise EshopboxConfigError(
            f"format='jsonl' but destination={str(path)!r} ends in {PARQUET_SUFFIX}: use format='parquet' "
            "(or leave format unset) or name it .jsonl / .jsonl.gz",
            field="format",
        )
    writer: RowWriter = JsonLinesWriter()
    if chosen == "parquet":
        require_pyarrow()
        writer = ParquetWriter(schema_of(stream))
    check_writable(path)
    return Output(path, writer)


def require_pyarrow() -> None:
    """Load pyarrow, or say which extra installs it. Its first import in a task process makes the
    system allocator Arrow's default (unless ARROW_DEFAULT_MEMORY_POOL says otherwise): mimalloc
    kept about 15 MB more resident over a 1M-row write while its pool held 2 MB, and passing the
    system pool call by call did not help (Arrow's internals allocate from the default)."""
    os.environ.setdefault("ARROW_DEFAULT_MEMORY_POOL", "system")  # read once, at pyarrow's import
    try:
        import pyarrow.parquet  # noqa: F401
    except ImportError:
        raise EshopboxConfigError(
            "format='parquet' needs pyarrow, which this worker does not have: install the provider's "
            "parquet extra, pip install 'airflow-provider-eshopbox[parquet]'",
            field="format",
        ) from None


def arrow_schema(schema: StreamSchema) -> Any:
    """The Parquet schema of ``schema``: its declared columns, then ``_extra``."""
    import pyarrow as pa

    fields = [pa.field(c.name, arrow_type(c), nullable=c.nullable) for c in schema.columns]
    return pa.schema([*fields, pa.field(EXTRA_COLUMN, pa.string())])


def arrow_type(column: Column) -> Any:
    """The pyarrow type of a declared column (``Column.arrow_type`` spells the same)."""
    import pyarrow as pa

    if column.type == "object" and column.fields:
        return pa.struct([pa.field(f.name, arrow_type(f)) for f in column.fields])
    if column.type == "array" and column.items is not None:
        return pa.list_(arrow_type(column.items))
    if column.type == "map" and column.items is not None:
        return pa.map_(pa.string(), arrow_type(column.items))
    if column.type == "decimal":
        return pa.decimal128(MONEY_PRECISION, column.scale)
    if column.type == "timestamp":
        return pa.timestamp("us", tz="UTC")
    simple = {"integer": pa.int64(), "number": pa.float64(), "boolean": pa.bool_(), "flag": pa.bool_()}
    return simple.get(column.type, pa.string())


def schema_fingerprint(schema: StreamSchema) -> str:
    """A short hash of the Parquet schema a stream is written with: equal fingerprints, equal schemas."""
    text = "\n".join(f"{c.name}: {c.arrow_type()}{'' if c.nullable else ' not null'}" for c in schema.columns)
    return hashlib.sha256(f"{text}\n{EXTRA_COLUMN}: string".encode()).hexdigest()[:16]


def _wire_type(column: Column) -> Any:
    """The Arrow type pyarrow's JSON reader parses a column's JSON values into; None: inferred (a
    flag, sent as a string, a number or a boolean). ValueError: the reader cannot take the column."""
    import pyarrow as pa

    if column.type == "flag":
        return None
    if column.type == "decimal":
        return pa.decimal128(38, column.scale)  # then cast to its precision, which checks the digits
    if column.type == "timestamp":
        return pa.int64() if column.zone == api.TIME_EPOCH_MS else pa.string()
    if column.type == "object" and column.fields:
        children = [(f.name, _wire_type(f)) for f in column.fields]
        return pa.struct([pa.field(name, wire) for name, wire in children if wire is not None])
    if column.type == "array" and column.items is not None and column.items.type != "flag":
        return pa.list_(_wire_type(column.items))
    if column.type in ("string", "integer", "number", "boolean"):
        return arrow_type(column)
    raise ValueError(f"pyarrow's JSON reader cannot give {column.type} {column.name} exactly")


def _wire_schema(schema: StreamSchema) -> Any:
    """The JSON reader's explicit schema of a stream, or None when one of its columns is not for it
    (a map, or JSON kept as text): that stream goes value by value."""
    import pyarrow as pa

    try:
        wires = [(c.name, _wire_type(c)) for c in schema.columns]
    except ValueError:
        return None
    return pa.schema([pa.field(name, wire) for name, wire in wires if wire is not None])


def _reader_unsafe(schema: StreamSchema) -> Callable[[bytes], bool]:
    """Whether text holds what the JSON reader would take where the converters refuse it: a money
    key with a string value (its decimal parser takes both), or a key spelt with an escape, which
    hides the name. The money keys are one RE2 pattern, run by pyarrow over the text in place
    (it releases the GIL, which the spool's merge on the main thread needs: ``re`` held it for
    0.27 s of a 200k-row write); the escape only where a backslash is (``in`` is a memchr)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    def money(columns: Iterable[Column]) -> Iterable[str]:
        for c in columns:
            yield from ([c.name] if c.type == "decimal" else money((*c.fields, *filter(None, [c.items]))))

    names = sorted(set(money(schema.columns)))
    if not names:  # no money column: nothing the reader would take that the converters refuse
        return lambda text: False
    strings = r'"(?:' + "|".join(re.escape(name) for name in names) + r')"\s*:\s*"'
    escaped = re.compile(rb'\\[^"]*"\s*:')

    def unsafe(text: bytes) -> bool:
        ends = pa.array([0, len(text)], pa.int64()).buffers()[1]
        whole = pa.Array.from_buffers(pa.large_binary(), 1, [None, ends, pa.py_buffer(text)])
        if pc.match_substring_regex(whole, strings)[0].as_py():
            return True
        return b"\\" in text and escaped.search(text) is not None

    return unsafe


def _from_wire(column: Column, arrow: Any, wire: Any, rows: int) -> Any:
    """A column's wire array (None: no row has the key) as its declared type, or None when a value
    does not fit exactly: out of range, a flag not 0/1, a null in a required column."""
    import pyarrow as pa
    import pyarrow.compute as pc

    if wire is None or pa.types.is_null(wire.type):
        return pa.nulls(rows, arrow) if column.nullable else None
    kind, array = column.type, None
    try:
        if kind == "flag" and pa.types.is_boolean(wire.type):
            array = wire
        elif kind == "flag" and (pa.types.is_integer(wire.type) or pa.types.is_string(wire.type)):
            zero, one = (0, 1) if pa.types.is_integer(wire.type) else ("0", "1")
            fits = pc.all(pc.is_in(wire.drop_null(), value_set=pa.array([zero, one], wire.type)))
            if fits.as_py() is not False:  # null: no value at all
                array = pc.equal(wire, pa.scalar(one, wire.type))
        elif kind == "number":
            array = wire if pc.all(pc.is_finite(wire)).as_py() is not False else None  # NaN: not JSON
        elif kind == "timestamp":
            array = _instants(column, arrow, wire)
        elif kind == "object":
            names = {wire.type.field(i).name for i in range(wire.type.num_fields)}
            if names <= {f.name for f in column.fields}:
                children = [
                    _from_wire(f, a.type, wire.field(f.name) if f.name in names else None, len(wire))
                    for f, a in zip(column.fields, arrow, strict=True)
                ]
                if all(child is not None for child in children):
                    array = pa.StructArray.from_arrays(children, fields=list(arrow), mask=wire.is_null())
        elif kind == "array" and column.items is not None:
            items = _from_wire(column.items, arrow.value_type, wire.values, len(wire.values))
            if items is not None:
                array = pa.ListArray.from_arrays(wire.offsets, items, type=arrow, mask=wire.is_null())
        elif kind != "flag":
            array = wire.cast(arrow)  # decimals: refuses more digits than the precision
    except (pa.ArrowException, OverflowError):
        return None
    if array is None or (array.null_count and not column.nullable):
        return None
    return array


def _instants(column: Column, arrow: Any, wire: Any) -> Any:
    """Timestamps of a column sent in its zone (int64 epoch-ms, or strings) as UTC microseconds;
    None for naive text not of the one width, raises ArrowException for a value pyarrow refuses."""
    import pyarrow as pa
    import pyarrow.compute as pc

    if column.zone == api.TIME_EPOCH_MS:
        return pc.multiply_checked(wire, 1000).cast(arrow)
    if column.zone == api.TIME_NAIVE_UTC:
        if pc.all(pc.equal(pc.utf8_length(wire), 19)).as_py() is False:
            return None
        naive = pc.strptime(wire, format=api.WMS_TIME_FORMAT, unit="us")
        return naive.cast(arrow)  # a zone-less instant taken as UTC
    return wire.cast(pa.timestamp("us", tz="UTC"))  # ISO with offset; a string without one is refused


def _pluck(rows: Sequence[Any], names: tuple[str, ...]) -> list[Sequence[Any]]:
    """The values of each key over ``rows`` (objects, or None for a null struct): one C call per row
    when every row has every key, else a lookup per value (a missing key is null)."""
    getter = operator.itemgetter(*names)
    try:
        plucked = [getter(row) for row in rows]
    except (KeyError, TypeError):
        return [[None if row is None else row.get(name) for row in rows] for name in names]
    if len(names) == 1:
        return [plucked]
    return list(zip(*plucked, strict=True)) if plucked else [() for _ in names]  # type: ignore[arg-type]


class _Misfit(Exception):
    def __init__(self, path: str, value: Any, reason: str) -> None:
        self.path, self.value, self.reason = path, value, reason


Convert = Callable[[Any, dict[str, Any]], Any]
_FLAGS = {"1": True, "0": False, 1: True, 0: False}
_FLAG_VALUES = {*_FLAGS, None}
_INT64 = 1 << 63


def _converter(column: Column, path: str) -> Convert:
    """A function from a JSON value of ``column`` to what pyarrow takes for its type (or _Misfit)."""
    inner = _value_converter(column, path)
    required = not column.nullable

    def convert(value: Any, extra: dict[str, Any]) -> Any:
        if value is None:
            if required:
                raise _Misfit(path, value, "is missing or null, and the column is required")
            return None
        return inner(value, extra)

    return convert


def _value_converter(column: Column, path: str) -> Convert:
    kind = column.type

    def misfit(value: Any, want: str) -> _Misfit:
        return _Misfit(path, value, f"is not {want}")

    if kind in ("string", "boolean"):  # the one JSON type, as it is
        want, spelt = _AS_IS[kind], "a string" if kind == "string" else "true or false"

        def as_is(value: Any, extra: dict[str, Any]) -> Any:
            if type(value) is want:
                return value
            raise misfit(value, spelt)

        return as_is
    if kind == "integer":

        def integer(value: Any, extra: dict[str, Any]) -> Any:
            if type(value) is Decimal and value == value.to_integral_value():
                value = int(value)
            if type(value) is int and -_INT64 <= value < _INT64:
                return value
            raise misfit(value, "a 64-bit integer")

        return integer
    if kind == "number":

        def number(value: Any, extra: dict[str, Any]) -> Any:
            if type(value) in (int, Decimal):
                return float(value)
            raise misfit(value, "a number")

        return number
    if kind == "flag":

        def flag(value: Any, extra: dict[str, Any]) -> Any:
            if type(value) in (str, int, bool) and value in _FLAGS:
                return bool(_FLAGS[value])
            raise misfit(value, 'a flag ("1"/"0", 1/0 or true/false)')

        return flag
    if kind == "decimal":
        scale, digits = column.scale, MONEY_PRECISION - column.scale
        step = Decimal(1).scaleb(-scale)

        def decimal(value: Any, extra: dict[str, Any]) -> Any:
            if type(value) is int:
                value = Decimal(value)
            if type(value) is Decimal and value.is_finite():
                exponent = value.as_tuple().exponent
                if isinstance(exponent, int) and exponent < -scale:
                    exact = value.quantize(step)
                    if exact != value:
                        raise _Misfit(path, value, f"has more than {scale} decimal places")
                    value = exact
                if value.adjusted() < digits:
                    return value
                raise _Misfit(path, value, f"has more than {digits} digits before the point")
            raise misfit(value, "a number")

        return decimal
    if kind == "timestamp":
        zone = column.zone or api.TIME_ISO_OFFSET

        def timestamp(value: Any, extra: dict[str, Any]) -> Any:
            try:
                return api.parse_time(value, zone)
            except ValueError as problem:
                raise _Misfit(path, value, f"{problem} (api.py: {zone})") from None

        return timestamp
    if kind == "object" and column.fields:
        plan = [(f.name, _converter(f, f"{path}.{f.name}")) for f in column.fields]
        known = frozenset(f.name for f in column.fields)

        def struct(value: Any, extra: dict[str, Any]) -> Any:
            if type(value) is not dict:
                raise misfit(value, "an object")
            for key in value.keys() - known:
                extra[f"{path}.{key}"] = value[key]
            return {name: convert(value.get(name), extra) for name, convert in plan}

        return struct
    if kind in ("array", "map") and column.items is not None:
        item = column.items

        if kind == "array":
            convert_element, marker = _converter(item, f"{path}[]"), f"{path}[]"

            def array(value: Any, extra: dict[str, Any]) -> Any:
                if type(value) is not list:
                    raise misfit(value, "an array")
                out = []
                for index, element in enumerate(value):
                    known = len(extra)
                    try:
                        out.append(convert_element(element, extra))
                    except _Misfit as problem:  # name the element
                        problem.path = problem.path.replace(marker, f"{path}[{index}]", 1)
                        raise
                    if len(extra) > known:  # an undeclared key in this element: keep where it was
                        for key in list(extra)[known:]:
                            extra[key.replace(marker, f"{path}[{index}]", 1)] = extra.pop(key)
                return out

            return array
        convert_item = _converter(item, f"{path}.*")

        def mapping(value: Any, extra: dict[str, Any]) -> Any:
            if type(value) is not dict:
                raise misfit(value, "an object")
            return [(key, convert_item(v, extra)) for key, v in value.items()]

        return mapping
    import msgspec

    encode = msgspec.json.Encoder(decimal_format="number").encode

    def json_text(value: Any, extra: dict[str, Any]) -> Any:  # an undeclared shape: kept as its JSON
        return encode(value).decode()

    return json_text
