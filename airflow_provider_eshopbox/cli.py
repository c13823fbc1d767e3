"""``airflow eshopbox probe``: the contract probe as an Airflow CLI subcommand (provider info ``cli``)."""

from __future__ import annotations

import sys
from typing import Any


def _probe(args: Any) -> None:
    from airflow_provider_eshopbox import probe

    argv = ["--conn-id", args.conn_id, *(["--json"] if args.json else [])]
    code = probe.main(argv)
    if code:
        sys.exit(code)


def get_cli_commands() -> list[Any]:
    """Airflow's provider CLI hook: one ``eshopbox`` group with a ``probe`` command."""
    from airflow.cli.cli_config import ActionCommand, Arg, GroupCommand

    from airflow_provider_eshopbox.hooks.eshopbox import EshopboxHook

    args = (
        Arg(("--conn-id",), help="Eshopbox connection id", default=EshopboxHook.default_conn_name),
        Arg(("--json",), help="print a JSON report instead of the table", action="store_true"),
    )
    probe = ActionCommand(
        name="probe",
        help="Check api.py's ASSUMPTIONs against the connection's workspace (read-only, <= 50 requests)",
        func=_probe,
        args=args,
    )
    return [GroupCommand(name="eshopbox", help="Eshopbox provider commands", subcommands=(probe,))]
