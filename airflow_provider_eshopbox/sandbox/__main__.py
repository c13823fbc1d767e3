"""CLI: serve a sandbox until Ctrl-C/SIGTERM, printing the URLs, a connection value and ``READY <origin>``.

Control commands drive a running sandbox over HTTP (for sensors): ``ship``/``deliver``/``cancel``
ORDER... and ``set-stock``. ``serve`` is the default command, so plain flags keep serving.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import signal
import ssl
import sys
import threading
from collections.abc import Sequence
from types import FrameType
from typing import Any
from urllib.parse import quote

from .core import EshopboxSandbox
from .quirks import NAMES, SIZES, parse_specs

PROG = "python -m airflow_provider_eshopbox.sandbox"
CONTROL_COMMANDS = ("ship", "deliver", "cancel", "set-stock", "faults")
ORDER_STATUS = {"ship": "shipped", "deliver": "delivered", "cancel": "cancelled"}
_EPILOG = f"""control commands (against a running sandbox; {PROG} COMMAND --help):
  ship|deliver|cancel [--url URL] ORDER...   every item of each order -> shipped/delivered/cancelled
  set-stock [--url URL] --esin ESIN_OR_SKU --warehouse WH [--sellable N] [--non-sellable N]
            [--inward-in-process N] [--outward-in-process N]
  faults [--url URL] [--clear] [KEY=VALUE ...]  replace fault settings (values are JSON; none
            given: only print them)

fault keys (FaultConfig.configure; also POST JSON to ORIGIN/__sandbox__/faults):
  latency_ms error_rate error_statuses throttle_rate retry_after drop_rate truncate_rate
  mutate_rate mutate_rows hang_s routes seed, script {{route: [status|drop|truncate|hang|ok|
  store_then_fail]}}, rate_limit {{rps, burst, routes}}
  drip_bytes_per_s drip_phase=headers|body drip_max_s drip_routes  slow trickle of replies
  echo_secrets echo_secrets_routes   error replies quote the request's credentials
  order_get_lag_s                    created orders 404 on GET for that long
  create_store_then_fail             a create is stored, then answered 500 (probability)
  inventory_updates_while_paging     n matching ESINs change before each inventory page
"""


_BUCKET_FLAGS = {
    "sellable": "sellable",
    "non-sellable": "nonSellable",
    "inward-in-process": "inwardInProcess",
    "outward-in-process": "outwardInProcess",
}


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog=f"{PROG} [serve]",
        description=__doc__,
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
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
        "--quirk",
        action="append",
        default=[],
        metavar="NAME[=N]",
        help="behave like a server that breaks an api.py ASSUMPTION; repeatable. One of: "
        + ", ".join(f"{n}=N" if n in SIZES else n for n in NAMES),
    )
    p.add_argument(
        "--tls",
        action="store_true",
        help="serve HTTPS with a throw-away CA made at start-up; its PEM path is printed and goes into "
        "the connection extra ca_bundle (or trust it with SSL_CERT_FILE=<path>); removed on exit",
    )
    return p


def _control_parser(command: str) -> argparse.ArgumentParser:
    what = {
        "set-stock": "set stock buckets for an ESIN/SKU in a warehouse (bumps its updatedOn)",
        "faults": "replace the fault settings (keys below; unnamed ones reset), --clear them, or print them",
    }.get(command) or f"move every item of each order to {ORDER_STATUS[command]} (updatedAt = now)"
    p = argparse.ArgumentParser(
        prog=f"{PROG} {command}",
        description=f"{what}, on a running sandbox.",
        epilog=_EPILOG.split("\n\n", 1)[1] if command == "faults" else None,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "--url",
        default=os.environ.get("ESHOPBOX_SANDBOX_URL", "http://127.0.0.1:8765"),
        help="the sandbox origin (default $ESHOPBOX_SANDBOX_URL or http://127.0.0.1:8765)",
    )
    p.add_argument("--ca-bundle", default=None, help="CA PEM to trust for a --tls sandbox")
    p.add_argument(
        "--token",
        default=os.environ.get("ESHOPBOX_SANDBOX_TOKEN"),
        help="control token a sandbox bound off loopback printed at start (env ESHOPBOX_SANDBOX_TOKEN)",
    )
    if command == "faults":
        p.add_argument("--clear", action="store_true", help="remove every fault first")
        p.add_argument("settings", nargs="*", metavar="KEY=VALUE", help="e.g. drip_bytes_per_s=5")
    elif command == "set-stock":
        p.add_argument("--esin", "--sku", dest="esin", required=True, help="ESIN or SKU")
        p.add_argument("--warehouse", required=True, help="warehouse code, e.g. DEL01")
        for flag, bucket in _BUCKET_FLAGS.items():
            p.add_argument(
                f"--{flag}", dest=bucket, type=int, default=None, metavar="N", help=f"new {bucket} count"
            )
    else:
        p.add_argument("orders", nargs="+", metavar="ORDER", help="customerOrderNumber(s)")
    return p


def _control(command: str, argv: Sequence[str]) -> int:
    """POST to ``/__sandbox__/orders/{con}/{action}`` or ``/__sandbox__/stock``; print each reply."""
    import httpx

    p = _control_parser(command)
    args = p.parse_args(argv)
    base = args.url.rstrip("/") + "/__sandbox__"
    if command == "faults":
        try:
            settings = dict(_setting(kv) for kv in args.settings)
        except ValueError as exc:
            p.error(str(exc))
        calls: list[tuple[str, str, dict[str, Any] | None]] = []
        if args.clear:
            calls.append(("DELETE", f"{base}/faults", None))
        if settings:
            calls.append(("POST", f"{base}/faults", settings))
        if not calls:
            calls.append(("GET", f"{base}/faults", None))
    elif command == "set-stock":
        buckets = {b: getattr(args, b) for b in _BUCKET_FLAGS.values() if getattr(args, b) is not None}
        if not buckets:
            p.error("give at least one of --" + ", --".join(_BUCKET_FLAGS))
        calls = [("POST", f"{base}/stock", {"esin": args.esin, "warehouse": args.warehouse, **buckets})]
    else:
        calls = [("POST", f"{base}/orders/{quote(con, safe='')}/{command}", None) for con in args.orders]
    verify: Any = ssl.create_default_context(cafile=args.ca_bundle) if args.ca_bundle else True
    failed = 0
    headers = {"X-Sandbox-Token": args.token} if args.token else {}
    with httpx.Client(timeout=30, verify=verify, headers=headers) as client:
        for method, url, body in calls:
            try:  # control POSTs must be JSON, even without a body (a web page cannot send that)
                r = client.request(method, url, json={} if body is None and method == "POST" else body)
            except httpx.HTTPError as exc:
                print(f"error: {url}: {exc}", file=sys.stderr)
                return 2
            if r.is_success:
                print(json.dumps(r.json()))
            else:
                failed += 1
                print(f"error: HTTP {r.status_code}: {r.text}", file=sys.stderr)
    return 1 if failed else 0


def _setting(text: str) -> tuple[str, Any]:
    """``key=value`` with a JSON value (``true``, ``5``, ``["order_get"]``), else the raw string."""
    key, sep, raw = text.partition("=")
    if not sep or not key:
        raise ValueError(f"expected KEY=VALUE, got {text!r}")
    try:
        return key, json.loads(raw)
    except ValueError:
        return key, raw


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the process exit code."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] in CONTROL_COMMANDS:
        return _control(argv[0], argv[1:])
    if argv and argv[0] == "serve":
        argv = argv[1:]
    return _serve(argv)


def _serve(argv: Sequence[str]) -> int:
    """Serve until SIGINT/SIGTERM."""
    parser = _parser()
    args = parser.parse_args(argv)
    try:
        quirks = parse_specs(args.quirk)
    except ValueError as exc:
        parser.error(f"--quirk: {exc}")
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
        quirks=quirks,
    )
    with sb:
        if sb.control_token is not None:
            print(
                f"WARNING: bound to {args.host}, not loopback: any host that reaches it can call the API"
                " routes with the throw-away credentials below; /__sandbox__ control (faults, order edits,"
                " and /info with the client secret and refresh token) needs the header"
                f" X-Sandbox-Token: {sb.control_token}",
                file=sys.stderr,
                flush=True,
            )
        rows = len(sb.store.rows)
        print(f"Eshopbox sandbox: {len(sb.store.orders)} orders, {rows} order-item rows, seed {args.seed}")
        start, end = (t.strftime("%Y-%m-%dT%H:%MZ") for t in sb.data_window)
        print(f"  data      updatedAt {start} .. {end}  (seeded orders and stock; edits stamp now)")
        print(f"  auth_url  {sb.auth_url}")
        print(f"  api_url   {sb.api_url}   (send header ProxyHost: {sb.workspace})")
        print(f"  wms_url   {sb.wms_url}")
        print(f"  control   {sb.origin}/__sandbox__/stats | /faults | /truth/orders | /orders/ORDER/ship")
        print(f"            {PROG} ship|deliver|cancel --url {sb.origin} ORDER...  (and set-stock)")
        if sb.ca_bundle is not None:
            print(f"  tls       CA {sb.ca_bundle}  (connection extra ca_bundle, already set below)")
            print(f"            other clients: SSL_CERT_FILE={shlex.quote(sb.ca_bundle)}")
        if quirks:
            print(f"  quirks    {', '.join(f'{k}={v}' if v is not True else k for k, v in quirks.items())}")
        print(f"AIRFLOW_CONN_ESHOPBOX_DEFAULT={shlex.quote(sb.connection_json())}")
        print(f"READY {sb.origin}", flush=True)
        while not stop.wait(0.5):
            pass
    print("Eshopbox sandbox stopped", flush=True)
    return 0


if __name__ == "__main__":
    code = main()
    sys.stdout.flush()
    sys.stderr.flush()
    # The sandbox is stopped and its files removed: skip freeing every row object one by one at
    # interpreter exit, which for a store of 5M rows (14 GB) outlasted SandboxProcess's wait.
    os._exit(code)
