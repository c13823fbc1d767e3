"""OpenLineage for the provider's operators: what a run read from Eshopbox and what it wrote where.

``EshopboxLineageMixin`` gives an operator ``get_openlineage_facets_on_complete`` and
``..._on_failure``, which the OpenLineage provider calls when it is installed
(``pip install airflow-provider-eshopbox[openlineage]``). Nothing here imports OpenLineage until
those methods run, so without it the provider works the same and emits nothing.

Datasets:

* Eshopbox side: namespace ``eshopbox://<workspace>``, name the stream (``orders``, ``inventory``,
  ``shipments``, ``returns``, ``products``), with the stream's declared schema (``schemas.py``).
* Files: named by the OpenLineage naming spec for the URL's scheme: ``file://<host>`` and the path;
  ``s3://<bucket>`` / ``gs://<bucket>`` and the key; otherwise ``<scheme>://<authority>`` and the
  path. Outputs carry ``outputStatistics`` (rows written) when the run got that far.

The manifest an operator returns is remembered on the operator as it returns (``execute`` of each
class that mixes this in is wrapped), so the row counts need neither XCom nor a second read.
"""

from __future__ import annotations

import functools
import socket
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

# Streams of the operators that predate this module (their own classes stay untouched).
_STREAM_BY_CLASS = {
    "EshopboxOrdersToStorageOperator": "orders",
    "EshopboxInventoryToStorageOperator": "inventory",
    "EshopboxCreateOrdersOperator": "orders",
}
_PUSH_CLASSES = ("EshopboxCreateOrdersOperator",)


def dataset_name(url: str) -> tuple[str, str]:
    """``(namespace, name)`` of an object-storage URL by the OpenLineage naming spec."""
    parts = urlsplit(url)
    scheme = (parts.scheme or "file").lower()
    authority = parts.netloc.rsplit("@", 1)[-1]  # ObjectStoragePath may carry a conn id as user
    if scheme in ("file", "local"):
        return f"file://{authority or socket.gethostname()}", parts.path
    if scheme in ("s3", "s3a", "s3n"):
        return f"s3://{authority}", parts.path.lstrip("/")
    if scheme in ("gs", "gcs"):
        return f"gs://{authority}", parts.path.lstrip("/")
    return f"{scheme}://{parts.netloc}", parts.path.lstrip("/") or "/"  # abfss: container@account kept


def eshopbox_namespace(workspace: str) -> str:
    return f"eshopbox://{workspace}"


class EshopboxLineageMixin:
    """OpenLineage facets for an Eshopbox operator (mix in before ``BaseOperator``)."""

    lineage_workspace: str | None = None
    _eshopbox_manifest: dict[str, Any] | None = None

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        execute = cls.__dict__.get("execute")
        if callable(execute):
            cls.execute = _remembering(execute)  # type: ignore[method-assign]

    # --- what the run touched --------------------------------------------------------------------
    @property
    def lineage_stream(self) -> str:
        for klass in type(self).__mro__:
            if klass.__name__ in _STREAM_BY_CLASS:
                return _STREAM_BY_CLASS[klass.__name__]
        return "unknown"

    def _workspace(self) -> str:
        if self.lineage_workspace:
            return self.lineage_workspace
        try:  # the connection only: no network call
            from airflow_provider_eshopbox.hooks.eshopbox import EshopboxHook

            conn_id = getattr(self, "eshopbox_conn_id", "eshopbox_default")
            return EshopboxHook(eshopbox_conn_id=conn_id).get_config().workspace
        except Exception:
            return "unknown"

    def _is_push(self) -> bool:
        return any(k.__name__ in _PUSH_CLASSES for k in type(self).__mro__)

    # --- OpenLineage entry points ------------------------------------------------------------------
    def get_openlineage_facets_on_complete(self, task_instance: Any) -> Any:
        """Inputs and outputs of a successful run, with the rows it wrote."""
        return self._lineage(self._eshopbox_manifest or {})

    def get_openlineage_facets_on_failure(self, task_instance: Any) -> Any:
        """Inputs and outputs a failed run was working on (nothing counted: nothing was written)."""
        return self._lineage({})

    def _lineage(self, manifest: dict[str, Any]) -> Any:
        try:
            from airflow.providers.openlineage.extractors import OperatorLineage
            from openlineage.client.event_v2 import InputDataset, OutputDataset
            from openlineage.client.facet_v2 import output_statistics_output_dataset as stats_facet
        except ImportError:
            return None
        from airflow_provider_eshopbox.schemas import SCHEMAS

        namespace = eshopbox_namespace(self._workspace())
        stream = self.lineage_stream
        schema = _schema_facet(stream, None)

        def stats(rows: Any) -> dict[str, Any]:
            if not isinstance(rows, int) or isinstance(rows, bool):
                return {}
            return {"outputStatistics": stats_facet.OutputStatisticsOutputDatasetFacet(rowCount=rows)}

        if self._is_push():
            inputs, outputs = [], []
            source = getattr(self, "source", None)
            if isinstance(source, str) or (source is not None and not isinstance(source, (list, tuple))):
                inputs.append(InputDataset(*dataset_name(str(source)), facets=schema))
            created = manifest.get("created")
            existing = manifest.get("existing")
            landed = created + existing if isinstance(created, int) and isinstance(existing, int) else None
            outputs.append(OutputDataset(namespace, stream, facets=schema, outputFacets=stats(landed)))
            rejects = manifest.get("rejects_path") or getattr(self, "rejects", None)
            if rejects:
                outputs.append(
                    OutputDataset(*dataset_name(str(rejects)), outputFacets=stats(manifest.get("rejected")))
                )
            return OperatorLineage(inputs=inputs, outputs=outputs)

        path = manifest.get("path") or getattr(self, "destination", None)
        fields = getattr(self, "fields", None)
        out_schema = _schema_facet(stream, fields) if stream in SCHEMAS else {}
        outputs = []
        if path:
            outputs.append(
                OutputDataset(
                    *dataset_name(str(path)), facets=out_schema, outputFacets=stats(manifest.get("rows"))
                )
            )
        return OperatorLineage(inputs=[InputDataset(namespace, stream, facets=schema)], outputs=outputs)


def _schema_facet(stream: str, fields: Any) -> dict[str, Any]:
    """``{"schema": SchemaDatasetFacet}`` of a stream (only ``fields`` when chosen), or ``{}``."""
    from openlineage.client.facet_v2 import schema_dataset

    from airflow_provider_eshopbox.schemas import SCHEMAS, resolve_fields

    schema = SCHEMAS.get(stream)
    if schema is None:
        return {}
    try:
        chosen = resolve_fields(stream, fields) if stream != "orders" else None
    except Exception:
        chosen = None
    columns = [c for c in schema.columns if chosen is None or c.name in chosen]
    return {
        "schema": schema_dataset.SchemaDatasetFacet(
            fields=[
                schema_dataset.SchemaDatasetFacetFields(name=c.name, type=c.type, description=c.description)
                for c in columns
            ]
        )
    }


def _remembering(execute: Callable[..., Any]) -> Callable[..., Any]:
    """``execute`` that also keeps its returned manifest on the operator, for the lineage methods."""

    @functools.wraps(execute)
    def wrapper(self: Any, *args: Any, **kwargs: Any) -> Any:
        self._eshopbox_manifest = None
        result = execute(self, *args, **kwargs)
        if isinstance(result, dict):
            self._eshopbox_manifest = result
        return result

    return wrapper
