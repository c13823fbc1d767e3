"""Token exchanges for N task processes started together: host-wide shared cache vs ``token_cache=process``.

Each process is one "task": it builds an ``EshopboxHook``, reads its connection (no network), waits on
a barrier with its siblings, then makes one API call on a cold token cache. The sandbox runs in its
own process with a fixed added latency on every request (token exchange included), so a
non-single-flight cache would show up as extra exchanges. Each mode runs ``--repeat`` times with a
fresh cache directory; exchanges come from the sandbox's counters, times are medians.

    python -m bench.tokens [--processes 20] [--latency-ms 50] [--repeat 3]
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import platform
import queue
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

from bench.report import headline

FILTER_ALL = (0, 2**42)


def work(conn_json: str, cache_dir: str, barrier: Any, results: Any, log_path: str) -> None:
    """One task process: configure, wait for every sibling, one API call; report its timings."""
    with open(log_path, "w") as log:  # keep 20 processes' log lines out of the table
        os.dup2(log.fileno(), 1)
        os.dup2(log.fileno(), 2)
    os.environ["AIRFLOW_CONN_ESHOPBOX_DEFAULT"] = conn_json
    os.environ["ESHOPBOX_TOKEN_CACHE_DIR"] = cache_dir
    from airflow_provider_eshopbox import api
    from airflow_provider_eshopbox.hooks.eshopbox import EshopboxHook

    hook = EshopboxHook()
    hook.get_config()  # no network yet
    barrier.wait(timeout=120)
    began = time.time()
    hook.fetch_orders_page(api.orders_window_filter(*FILTER_ALL), per_page=1)
    results.put((began, time.time()))


def _run(conn_json: str, processes: int) -> dict[str, float]:
    ctx = multiprocessing.get_context("forkserver")
    ctx.set_forkserver_preload(["airflow_provider_eshopbox.hooks.eshopbox"])
    barrier = ctx.Barrier(processes)
    results = ctx.Queue()
    cache_dir = tempfile.mkdtemp(prefix="eshopbox-bench-tokens-")
    log_dir = tempfile.mkdtemp(prefix="eshopbox-bench-tokens-logs-")
    logs = [os.path.join(log_dir, f"task-{i}.log") for i in range(processes)]
    procs = [ctx.Process(target=work, args=(conn_json, cache_dir, barrier, results, log)) for log in logs]
    launched = time.monotonic()
    for p in procs:
        p.start()
    times = []
    for _ in procs:
        try:
            times.append(results.get(timeout=180))
        except queue.Empty:
            break
    for p in procs:
        p.join(60)
    total = time.monotonic() - launched
    codes = [p.exitcode for p in procs]
    if codes != [0] * processes or len(times) != processes:
        tails = "".join(Path(log).read_text()[-1500:] for log, code in zip(logs, codes, strict=True) if code)
        raise SystemExit(f"task processes failed: exit codes {codes}\n{tails}")
    shutil.rmtree(cache_dir, ignore_errors=True)
    shutil.rmtree(log_dir, ignore_errors=True)
    starts, ends = zip(*times, strict=True)
    return {
        "calls_s": max(ends) - min(starts),  # barrier release -> last call answered
        "slowest_call_s": max(e - s for s, e in times),
        "total_s": total,  # including process start and connection read
    }


def _with_extra(conn_json: str, **extra: Any) -> str:
    conn = json.loads(conn_json)
    conn.setdefault("extra", {}).update(extra)
    return json.dumps(conn)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--processes", type=int, default=20)
    parser.add_argument("--latency-ms", type=float, default=50)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    from airflow_provider_eshopbox.sandbox.process import SandboxProcess

    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}")
    modes = {"shared": 1, "process": args.processes}  # mode -> expected exchanges
    measured: dict[str, list[dict[str, float]]] = {mode: [] for mode in modes}
    broken = []
    sandbox_args = ["--orders", "200", "--seed", "7", "--latency-ms", str(args.latency_ms)]
    with SandboxProcess(*sandbox_args) as sandbox:
        for _ in range(args.repeat):
            for mode, expected in modes.items():
                httpx.delete(f"{sandbox.origin}/__sandbox__/stats")
                result = _run(_with_extra(sandbox.connection_json, token_cache=mode), args.processes)
                stats = httpx.get(f"{sandbox.origin}/__sandbox__/stats").json()
                result["exchanges"] = stats["token_exchanges"]
                result["calls"] = stats["by_route"].get("orders_list", 0)
                measured[mode].append(result)
                if result["exchanges"] != expected:
                    broken.append(f"{mode}: {result['exchanges']} exchanges, expected {expected}")
    print(
        f"\nToken exchanges, {args.processes} task processes released together on a barrier, one API call "
        f"each on a cold cache; {args.latency_ms:.0f} ms added latency per request; "
        f"median of {args.repeat} (exchanges: every run)"
    )
    print(
        f"{'token_cache':<26}{'exchanges':>12}{'expected':>9}{'API calls':>10}"
        f"{'calls s':>9}{'slowest call s':>15}{'total s':>9}"
    )
    labels = {"shared": "shared (host-wide file)", "process": "process"}
    for mode, expected in modes.items():
        runs = measured[mode]
        exchanges = "/".join(str(int(r["exchanges"])) for r in runs)
        calls = "/".join(str(int(r["calls"])) for r in runs)
        print(
            f"{labels[mode]:<26}{exchanges:>12}{expected:>9}{calls:>10}"
            f"{statistics.median(r['calls_s'] for r in runs):>9.2f}"
            f"{statistics.median(r['slowest_call_s'] for r in runs):>15.2f}"
            f"{statistics.median(r['total_s'] for r in runs):>9.2f}"
        )
    print(
        "calls s = barrier release to the last call answered; total s = including process start "
        "(forkserver, hook module preloaded)"
    )
    for mode, expected in modes.items():
        exchanges = "/".join(str(int(r["exchanges"])) for r in measured[mode])
        headline(f"token exchanges, {args.processes} processes, {mode}", f"{exchanges} (expected {expected})")
    if broken:
        print("INVARIANT BROKEN: " + "; ".join(broken))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
