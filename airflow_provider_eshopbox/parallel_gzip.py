"""A gzip writer that deflates on several threads and still writes one standard gzip member.

The final write of a large sync was bound by serial deflate. This is the ``pigz`` technique: input
is cut into chunks, each deflated on its own thread (zlib releases the GIL) with the previous
32 KiB as its preset dictionary and ended by a sync flush, so the pieces join into one deflate
stream about as small as a serial one. Every gzip reader accepts it; the same input gives the same
bytes (no time or name in the header, chunks cut by byte count).
"""

from __future__ import annotations

import os
import struct
import zlib
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from typing import IO

_CHUNK = 1 << 18  # input bytes deflated per thread task: 1 MiB held ~10 MB more at peak for no gain
_THREADS = 4
_WINDOW = 32 * 1024  # deflate's window: the preset dictionary of the next chunk
_HEADER = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\xff"  # deflate, no flags, mtime 0, unknown OS


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
            if self._buffer:
                self._submit(bytes(self._buffer))
                self._buffer.clear()
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


def _deflate_chunk(chunk: bytes, dictionary: bytes, level: int) -> bytes:
    if dictionary:
        compressor = zlib.compressobj(level, zlib.DEFLATED, -zlib.MAX_WBITS, zdict=dictionary)
    else:
        compressor = zlib.compressobj(level, zlib.DEFLATED, -zlib.MAX_WBITS)
    return compressor.compress(chunk) + compressor.flush(zlib.Z_SYNC_FLUSH)
