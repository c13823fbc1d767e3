"""Asset outlet events: put an operator's manifest on the event of each of its ``Asset`` outlets."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from airflow.sdk import BaseOperator, Context


def attach_to_outlet_events(operator: BaseOperator, context: Context, manifest: dict[str, Any]) -> None:
    """Put the manifest on the event of every Asset outlet, for asset-scheduled downstream DAGs."""
    from airflow.sdk import Asset

    outlet_events = context.get("outlet_events")
    if outlet_events is None:
        return
    for outlet in operator.outlets or []:
        if isinstance(outlet, Asset):
            outlet_events[outlet].extra = dict(manifest)
