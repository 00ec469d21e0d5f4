"""A stderr nobody reads never stops the emulator: output is dropped, and counted."""

from __future__ import annotations

import os
import signal
import threading

import httpx
from emulator_support import serve_child, wait_for


def test_unread_stderr_does_not_block_the_emulator():
    # The emulator's stderr is a pipe this test leaves unread until the end.
    proc, url = serve_child("faults.flood", "--timeout", "20")
    assert proc.stderr is not None
    try:
        path = "/2015-03-31/functions/function/invocations"
        with httpx.Client(base_url=url, timeout=30) as client:
            r = client.post(path, json={"mb": 50})
            assert r.status_code == 200 and r.json() == {"flooded_mb": 50}
            r = client.post(path, json={"mb": 1})
            assert r.status_code == 200
            # Now read: what was queued comes out, then the count of what was dropped.
            seen = bytearray()
            fd = proc.stderr.fileno()

            def read() -> None:
                while chunk := os.read(fd, 1 << 16):
                    seen.extend(chunk)

            reader = threading.Thread(target=read, daemon=True)
            reader.start()
            assert client.post(path, json={"mb": 0}).status_code == 200
            needle = b"bytes of function output dropped: stderr is not being read"
            wait_for(lambda: needle in bytes(seen), "the dropped-output notice", timeout=20)
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        finally:
            proc.kill()
    reader.join(timeout=10)
    assert proc.returncode == 0
    dropped = int(bytes(seen).split(b" bytes of function output dropped")[0].split(b" ")[-1])
    assert dropped > 40 << 20


def test_sigterm_stops_the_emulator_while_stderr_is_unread():
    proc, url = serve_child("faults.flood", "--timeout", "20")
    try:
        path = "/2015-03-31/functions/function/invocations"
        r = httpx.post(url + path, json={"mb": 20}, timeout=30)
        assert r.status_code == 200
        proc.send_signal(signal.SIGTERM)
        # Never read: the emulator must stop all the same (a bounded wait for the reader).
        assert proc.wait(timeout=15) == 0
    finally:
        proc.kill()
        proc.wait()
        assert proc.stderr is not None
        proc.stderr.close()
