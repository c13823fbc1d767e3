"""A gzip writer that deflates on several threads and still writes one standard gzip member.

The final write of a large sync was bound by serial deflate. This is the ``pigz`` technique: input
is cut into chunks, each deflated on its own thread (zlib releases the GIL) with the previous
32 KiB as its preset dictionary and ended by a sync flush, so the pieces join into one deflate
stream about as small as a serial one. Every gzip reader accepts it; the same input gives the same
bytes (no time or name in the header, chunks cut by byte count).

The stream can also be cut into sections, each chunked from its own start with a fresh dictionary.
A section can then be deflated ahead of time, while the rest is still unknown (``deflate_section``),
and spliced in (``write_deflated``) with the same bytes as if it had been written.
"""

from __future__ import annotations

import os
import struct
import zlib
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import IO

_CHUNK = 1 << 18  # input bytes deflated per thread task: 1 MiB held ~10 MB more at peak for no gain
_THREADS = 4
_WINDOW = 32 * 1024  # deflate's window: the preset dictionary of the next chunk
_HEADER = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\xff"  # deflate, no flags, mtime 0, unknown OS


@dataclass(frozen=True)
class Deflated:
    """A section deflated on its own: raw deflate ending in a sync flush, its input's CRC-32 and size."""

    data: bytes
    crc: int
    size: int


def deflate_section(data: bytes, *, level: int = 6, chunk_size: int = _CHUNK) -> Deflated:
    """``data`` deflated exactly as ``ParallelGzip`` deflates a section (on the calling thread)."""
    parts, dictionary = [], b""
    for start in range(0, len(data), chunk_size):
        chunk = data[start : start + chunk_size]
        parts.append(_deflate_chunk(chunk, dictionary, level))
        dictionary = chunk[-_WINDOW:]
    return Deflated(b"".join(parts), zlib.crc32(data), len(data))


class ParallelGzip:
    """Binary writer of a gzip file onto ``raw``; at most two chunks per thread wait in memory."""

    def __init__(self, raw: IO[bytes], *, level: int = 6, chunk_size: int = _CHUNK) -> None:
        self._raw = raw
        self._level = level
        self._chunk_size = chunk_size
        self._buffer = bytearray()
        self._dictionary = b""
        self._crc = 0
        self._size = 0
        threads = max(1, min(_THREADS, os.cpu_count() or 1))
        self._pool = ThreadPoolExecutor(threads, "eshopbox-gzip")
        self._pending: deque[Future[bytes]] = deque()
        self._limit = 2 * threads  # chunks compressed ahead of the writer, at most
        raw.write(_HEADER)

    def write(self, data: bytes) -> int:
        """Buffer ``data``; each full chunk goes to a thread, finished ones are written in order."""
        self._buffer += data
        while len(self._buffer) >= self._chunk_size:
            self._submit(bytes(self._buffer[: self._chunk_size]))
            del self._buffer[: self._chunk_size]
        return len(data)

    def end_section(self) -> None:
        """End the current section: what is buffered is deflated, and the next chunk starts afresh."""
        if self._buffer:
            self._submit(bytes(self._buffer))
            self._buffer.clear()
        self._dictionary = b""

    def write_deflated(self, section: Deflated) -> None:
        """Splice in a section deflated ahead (``deflate_section``, same level and chunk size)."""
        self.end_section()
        done: Future[bytes] = Future()
        done.set_result(section.data)
        self._pending.append(done)
        self._crc = crc32_combine(self._crc, section.crc, section.size)
        self._size += section.size

    def _submit(self, chunk: bytes) -> None:
        self._crc = zlib.crc32(chunk, self._crc)
        self._size += len(chunk)
        self._pending.append(self._pool.submit(_deflate_chunk, chunk, self._dictionary, self._level))
        self._dictionary = chunk[-_WINDOW:]
        while len(self._pending) > self._limit:
            self._raw.write(self._pending.popleft().result())

    def close(self) -> None:
        """Compress the rest, end the stream (an empty final block) and write the gzip trailer."""
        try:
            self.end_section()
            while self._pending:
                self._raw.write(self._pending.popleft().result())
        finally:
            self._pool.shutdown(cancel_futures=True)
        ending = zlib.compressobj(self._level, zlib.DEFLATED, -zlib.MAX_WBITS).flush(zlib.Z_FINISH)
        self._raw.write(ending + struct.pack("<II", self._crc, self._size & 0xFFFFFFFF))

    def __enter__(self) -> ParallelGzip:
        return self

    def __exit__(self, exc_type: object, *exc: object) -> None:
        if exc_type is None:
            self.close()
        else:
            self._pool.shutdown(cancel_futures=True)


def crc32_combine(crc1: int, crc2: int, length2: int) -> int:
    """CRC-32 of ``a + b`` from ``crc32(a)``, ``crc32(b)`` and ``len(b)`` (zlib's algorithm).

    Python's zlib does not expose ``crc32_combine``; a spliced section's CRC needs it. ``crc1`` is
    advanced over ``length2`` zero bytes, one bit of ``length2`` at a time, with the operators for
    2**k zero bytes computed once (a GF(2) 32x32 matrix each).
    """
    bit = 0
    while length2 > 0:
        if length2 & 1:
            crc1 = _gf2_times(_zero_bytes_operator(bit), crc1)
        length2 >>= 1
        bit += 1
    return crc1 ^ crc2


_ZERO_BYTES_OPERATORS: list[list[int]] = []  # [k]: the CRC-32 operator for 2**k zero bytes


def _zero_bytes_operator(k: int) -> list[int]:
    operators = _ZERO_BYTES_OPERATORS
    if not operators:
        one_bit = [0xEDB88320] + [1 << n for n in range(31)]
        operators.append(_gf2_square(_gf2_square(_gf2_square(one_bit))))  # 8 bits: one byte
    while len(operators) <= k:
        operators.append(_gf2_square(operators[-1]))
    return operators[k]


def _gf2_times(matrix: list[int], vector: int) -> int:
    total, row = 0, 0
    while vector:
        if vector & 1:
            total ^= matrix[row]
        vector >>= 1
        row += 1
    return total


def _gf2_square(matrix: list[int]) -> list[int]:
    return [_gf2_times(matrix, matrix[n]) for n in range(32)]


def _deflate_chunk(chunk: bytes, dictionary: bytes, level: int) -> bytes:
    if dictionary:
        compressor = zlib.compressobj(level, zlib.DEFLATED, -zlib.MAX_WBITS, zdict=dictionary)
    else:
        compressor = zlib.compressobj(level, zlib.DEFLATED, -zlib.MAX_WBITS)
    return compressor.compress(chunk) + compressor.flush(zlib.Z_SYNC_FLUSH)
