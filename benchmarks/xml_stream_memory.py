"""Benchmark: the XML streaming layer's memory does not grow with the file.

Streams a generated SAF-T-shaped document of N transactions (written lazily, so the
benchmark holds no file) through `formats.xml_stream.stream_elements` and prints, for each
N, the transactions seen, the Python-heap peak traced by `tracemalloc`, and the time
(slowed several-fold by tracemalloc itself). Flat memory means the peak at 40,000
transactions is about the peak at 1,000 (elements are cleared as they are read); a kept
tree would need ~10 MB per 60,000. Moved here from a unit
test (issue 11): memory claims are measured by scripts, not asserted in the suite.

    .venv/bin/python benchmarks/xml_stream_memory.py [--counts 1000,10000,40000]
"""

from __future__ import annotations

import argparse
import io
import time
import tracemalloc
from collections.abc import Iterator
from typing import Any

from receipt_agent.formats.xml_stream import stream_elements


class GeneratedXml(io.RawIOBase):
    """A file-like that writes `count` transactions lazily."""

    def __init__(self, count: int) -> None:
        self._chunks = self._generate(count)
        self._buffer = b""

    @staticmethod
    def _generate(count: int) -> Iterator[bytes]:
        yield b'<?xml version="1.0"?><auditfile xmlns="urn:x"><company><location><cashregister>'
        for number in range(count):
            yield (
                f"<cashtransaction><nr>{number}</nr><ctLine><lineAmntIn>1.00</lineAmntIn>"
                f"</ctLine><event>ignored {number}</event></cashtransaction><event>x</event>"
            ).encode()
        yield b"</cashregister></location></company></auditfile>"

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        while len(self._buffer) < len(buffer):
            chunk = next(self._chunks, None)
            if chunk is None:
                break
            self._buffer += chunk
        size = min(len(buffer), len(self._buffer))
        buffer[:size] = self._buffer[:size]
        self._buffer = self._buffer[size:]
        return size


def measure(count: int) -> dict[str, float]:
    """Stream `count` transactions; return how many were seen, the traced peak and seconds."""
    tracemalloc.start()
    started = time.perf_counter()
    try:
        seen = 0
        for _found in stream_elements(
            io.BufferedReader(GeneratedXml(count)), lambda path: path[-1] == "cashtransaction"
        ):
            seen += 1
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return {"count": seen, "peak_mb": peak / 1024 / 1024, "seconds": time.perf_counter() - started}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--counts", default="1000,10000,40000")
    args = parser.parse_args()
    print(f"{'transactions':>12}  {'traced peak':>11}  {'seconds':>7}")
    for count in (int(part) for part in args.counts.split(",")):
        result = measure(count)
        print(f"{result['count']:>12,.0f}  {result['peak_mb']:>8.2f} MB  {result['seconds']:>7.2f}")


if __name__ == "__main__":
    main()
