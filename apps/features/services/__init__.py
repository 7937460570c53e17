"""Every write and rule of the feature store, plus the entry points other apps call.

Entry points for other apps (stable):

- ``online_features_get(*, feature_set, entity_keys, as_of=None) -> list[dict]`` — online lookup.
- ``lookup_plan_spec(feature_set) -> dict`` (plain JSON) and ``lookup_plan_from_spec(spec)``, with
  ``online_features_with_plan(*, plan, entity_keys, now=None, read=None)`` — the same lookup with no read
  of the set, and optionally another reader than the store (serving keeps the spec in its state snapshot).
- ``feature_set_online_check(*, feature_set) -> None`` — raises InvalidInput naming batch-only features.
- ``training_set_build_frame(*, feature_set, labels, timestamp_column, ...) -> polars.DataFrame`` — the
  point-in-time join, synchronously, for training jobs and the skew check.
- ``feature_view_freshness(*, view, now=None) -> dict`` — freshness vs SLA (a metric monitoring can alert on).

Writes take the acting user, check ``apps.projects.permissions.can``, write the audit trail and enqueue
background work through ``job_create`` (after commit).

The package is split by concern: ``sources`` (entities, data sources), ``feature_views``, ``sets``,
``online`` (materialization, lookup, freshness) and ``training_sets``; every public name is re-exported here.
"""

from .common import (  # noqa: F401
    COLUMN_RE,
    NAME_RE,
    _read_upload,
    _require,
    _spool,
    _store_parquet,
    data_source_frame,
    table_error,
    tabular_null_values,
    tabular_types,
)
from .feature_views import (  # noqa: F401
    VIEW_ARGS,
    feature_view_create,
    feature_view_is_used,
    feature_view_update,
    feature_view_versions_in_use,
    feature_views_rematerialize_for_source,
    format_duration,
    parse_duration_text,
    view_key_problem,
    view_spec,
)
from .online import (  # noqa: F401
    feature_set_freshness,
    feature_view_freshness,
    feature_view_materialize,
    feature_view_materialize_due,
    feature_view_materialize_request,
    feature_view_materialize_run,
    online_features_get,
    online_features_with_plan,
)
from .sets import (  # noqa: F401
    _PLANS,
    REF_RE,
    _lookup_plan,
    feature_set_create,
    feature_set_key_problems,
    feature_set_online_check,
    feature_set_update,
    feature_set_usage,
    lookup_plan_from_spec,
    lookup_plan_spec,
)
from .sources import (  # noqa: F401
    data_source_declared_types,
    data_source_ingest,
    data_source_ingest_run,
    data_source_upload,
    data_source_upload_request,
    entity_create,
)
from .training_sets import (  # noqa: F401
    label_types,
    labels_validate,
    training_set_build_frame,
    training_set_build_run,
    training_set_join,
    training_set_report,
    training_set_request,
)
