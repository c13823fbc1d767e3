"""Trigger-form params shared by DAGs that use this provider.

``conn_id_param()`` lets whoever triggers a DAG choose which Eshopbox connection its tasks use: pass
``eshopbox_conn_id="{{ params.conn_id }}"`` to the operators and sensors (the field is templated on
every one of them; the hook is built when the task runs, from the rendered id). A conn id that names
no connection fails the first task at once, saying so and what to do, without retries.
"""

from __future__ import annotations

from typing import Any

from airflow_provider_eshopbox.connection import DEFAULT_CONN_ID

CONN_ID_PARAM = "conn_id"
CONN_ID_TITLE = "Eshopbox connection"
CONN_ID_DESCRIPTION = (
    "Connection ID of the Eshopbox connection to use (Admin > Connections, type Eshopbox), e.g. "
    "eshopbox_default or eshopbox_staging. An ID that does not exist fails the first task at once."
)
# Airflow's conn ids hold no whitespace; the form refuses a blank or spaced value before a run is made
# (Airflow checks "pattern" and "minLength" when the run is created).
CONN_ID_PATTERN = r"^\S+$"


def conn_id_param(default: str = DEFAULT_CONN_ID) -> Any:
    """The ``conn_id`` trigger-form field: a string, ``default`` unless the form says otherwise."""
    from airflow.sdk import Param

    return Param(
        default,
        type="string",
        minLength=1,
        maxLength=250,
        pattern=CONN_ID_PATTERN,
        title=CONN_ID_TITLE,
        description=CONN_ID_DESCRIPTION,
    )
