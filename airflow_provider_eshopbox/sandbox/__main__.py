"""CLI: serve a sandbox until Ctrl-C/SIGTERM, printing the URLs, a connection value and ``READY <origin>``."""

from __future__ import annotations

import argparse
import shlex
import signal
import sys
import threading
from collections.abc import Sequence
from types import FrameType

from .core import EshopboxSandbox


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m airflow_provider_eshopbox.sandbox", description=__doc__)
    p.add_argument("--host", default="127.0.0.1", help="bind address (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=8765, help="port; 0 picks a free one (default 8765)")
    p.add_argument("--orders", type=int, default=5000, help="number of orders, 1-4 items each (default 5000)")
    p.add_argument("--order-items", type=int, default=None, help="exact number of order-item rows instead")
    p.add_argument("--seed", type=int, default=7, help="data/credential/fault seed (default 7)")
    p.add_argument("--workspace", default="acme", help="workspace slug (default acme)")
    p.add_argument("--token-ttl", type=int, default=86400, help="access-token lifetime in s (default 86400)")
    p.add_argument("--latency-ms", type=float, default=0, help="added latency per API request (default 0)")
    p.add_argument("--days", type=int, default=7, help="span of generated updatedAt values (default 7)")
    p.add_argument(
        "--tls",
        action="store_true",
        help="serve HTTPS with a throw-away CA made at start-up; its PEM path is printed and goes into "
        "the connection extra ca_bundle (or trust it with SSL_CERT_FILE=<path>); removed on exit",
    )
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the process exit code."""
    args = _parser().parse_args(argv)
    stop = threading.Event()

    def _on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGINT, _on_signal)
    signal.signal(signal.SIGTERM, _on_signal)
    sb = EshopboxSandbox(
        orders=args.orders,
        order_items=args.order_items,
        seed=args.seed,
        workspace=args.workspace,
        token_ttl=args.token_ttl,
        latency_ms=args.latency_ms,
        days=args.days,
        port=args.port,
        host=args.host,
        tls=args.tls,
    )
    with sb:
        rows = len(sb.store.rows)
        print(f"Eshopbox sandbox: {len(sb.store.orders)} orders, {rows} order-item rows, seed {args.seed}")
        print(f"  auth_url  {sb.auth_url}")
        print(f"  api_url   {sb.api_url}   (send header ProxyHost: {sb.workspace})")
        print(f"  wms_url   {sb.wms_url}")
        print(f"  control   {sb.origin}/__sandbox__/stats | /faults | /truth/orders")
        if sb.ca_bundle is not None:
            print(f"  tls       CA {sb.ca_bundle}  (connection extra ca_bundle, already set below)")
            print(f"            other clients: SSL_CERT_FILE={shlex.quote(sb.ca_bundle)}")
        print(f"AIRFLOW_CONN_ESHOPBOX_DEFAULT={shlex.quote(sb.connection_json())}")
        print(f"READY {sb.origin}", flush=True)
        while not stop.wait(0.5):
            pass
    print("Eshopbox sandbox stopped", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
