#!/usr/bin/env python3
"""Server memory under many unfinished request heads (BENCHMARKS.md).

Opens CONNECTIONS connections to 127.0.0.1:PORT, sends HEAD_BYTES of a request
head on each without its blank line, and holds them until the server closes
them (request_head_timeout_seconds: 408) or HOLD seconds pass. Samples the
server's VmRSS and VmHWM from /proc/PID/status while they arrive and are
held, and once more SETTLE seconds after every connection is closed.

    scripts/head_memory.py PID PORT CONNECTIONS HEAD_BYTES [HOLD] [SETTLE]

Bounded: one connection per slot, no retries, 127.0.0.1 only.
"""

import asyncio
import sys
import time


def rss(pid):
    fields = {}
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            key, _, value = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                fields[key] = int(value.split()[0]) / 1024
    return fields


async def one(port, head, hold, outcome):
    try:
        reader, writer = await asyncio.wait_for(
            asyncio.open_connection("127.0.0.1", port), timeout=hold
        )
    except Exception:
        outcome["refused"] += 1
        return
    try:
        writer.write(head)
        await asyncio.wait_for(writer.drain(), timeout=hold)
        answer = await asyncio.wait_for(reader.read(64), timeout=hold)
        status = answer[9:12].decode(errors="replace") if answer else "closed"
        outcome[status] = outcome.get(status, 0) + 1
    except asyncio.TimeoutError:
        outcome["held"] += 1
    except Exception:
        outcome["reset"] += 1
    finally:
        writer.close()


async def main():
    pid, port, connections, head_bytes = (int(a) for a in sys.argv[1:5])
    hold = float(sys.argv[5]) if len(sys.argv) > 5 else 30.0
    settle = float(sys.argv[6]) if len(sys.argv) > 6 else 5.0
    start = rss(pid)  # VmHWM here includes the start (keys, migrations)
    line = b"GET /healthz HTTP/1.1\r\nhost: 127.0.0.1\r\n"
    filler = head_bytes - len(line) - len(b"x-filler: \r\n")
    # No blank line: the head never ends.
    head = line + b"x-filler: " + b"a" * filler + b"\r\n"
    outcome = {"refused": 0, "held": 0, "reset": 0}
    tasks = [asyncio.create_task(one(port, head, hold, outcome)) for _ in range(connections)]
    peak = 0.0
    began = time.monotonic()
    while not all(t.done() for t in tasks):
        peak = max(peak, rss(pid)["VmRSS"])
        await asyncio.sleep(0.1)
    took = time.monotonic() - began
    await asyncio.sleep(settle)
    end = rss(pid)
    print(
        f"connections={connections} head_bytes={len(head)} start_rss={start['VmRSS']:.1f}MiB start_hwm={start['VmHWM']:.1f}MiB "
        f"peak_rss={peak:.1f}MiB hwm={end['VmHWM']:.1f}MiB after_close_rss={end['VmRSS']:.1f}MiB "
        f"all_closed_in={took:.1f}s outcome={outcome}"
    )


asyncio.run(main())
