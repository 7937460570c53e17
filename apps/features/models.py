"""The feature store's data.

- ``Entity``: what features describe (a customer, a card), with the join key column name and its type.
- ``DataSource`` + ``DataSourceVersion``: an uploaded CSV/Parquet file; each upload is a new immutable
  version stored as Parquet (artifact store), with its schema, row count and per-column statistics.
- ``FeatureView`` (versioned) + ``Feature``: typed features read from a source, keyed by an entity, with
  an event-timestamp column, an optional written-at column, an availability lag, a TTL and an online flag.
  A view used by a feature set or a training set is immutable: editing it creates version n+1.
- ``FeatureSet`` + ``FeatureSetItem``: an ordered, named list of ``view:feature`` references (pinned to
  view versions) — the input contract of a model. ``has_batch_only`` / ``batch_only_features`` tell
  whether it can be served online.
- ``TrainingSet``: a point-in-time join of a label file to a feature set, stored as Parquet, with its
  report (null rates, label balance, leakage) and lineage (source versions used).
- ``OnlineFeatureValue``: the PostgreSQL online store: per view and entity key, the latest value available
  at materialization time, with its event time.
"""

from django.conf import settings as django_settings
from django.db import models

from apps.projects.models import Job, Project


class ValueType(models.TextChoices):
    STRING = "string", "String"
    INT = "int", "Integer"
    FLOAT = "float", "Float"
    BOOL = "bool", "Boolean"
    DATETIME = "datetime", "Datetime"


class Entity(models.Model):
    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="feature_entities")
    name = models.SlugField(max_length=80)
    join_key = models.CharField(max_length=80, help_text="Column that holds the entity's key, e.g. customer_id")
    value_type = models.CharField(max_length=10, choices=ValueType.choices, default=ValueType.STRING)
    description = models.TextField(blank=True, max_length=2000)
    created_by = models.ForeignKey(django_settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]
        verbose_name_plural = "entities"
        constraints = [models.UniqueConstraint(fields=["project", "name"], name="feature_entity_unique_name")]

    def __str__(self) -> str:
        return self.name


class DataSource(models.Model):
    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="feature_sources")
    name = models.SlugField(max_length=80)
    description = models.TextField(blank=True, max_length=2000)
    created_by = models.ForeignKey(django_settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]
        constraints = [models.UniqueConstraint(fields=["project", "name"], name="feature_source_unique_name")]

    def __str__(self) -> str:
        return self.name

    @property
    def latest_version(self):
        return self.versions.order_by("-version").first()


class DataSourceVersion(models.Model):
    """One immutable upload of a source, stored as Parquet. Never updated after creation."""

    source = models.ForeignKey(DataSource, on_delete=models.CASCADE, related_name="versions")
    version = models.PositiveIntegerField()
    artifact_key = models.CharField(max_length=200)
    sha256 = models.CharField(max_length=64)
    size = models.BigIntegerField(default=0)
    original_filename = models.CharField(max_length=255, blank=True)
    original_format = models.CharField(max_length=10, default="csv")
    row_count = models.BigIntegerField(default=0)
    # [{"name": "amount", "type": "float"}, ...] in file order
    schema = models.JSONField(default=list)
    # {"amount": {"type": "float", "nulls": 0, "null_rate": 0.0, "min": .., "max": .., "mean": .., "hist": {...}}, ...}
    stats = models.JSONField(default=dict)
    created_by = models.ForeignKey(django_settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["source", "-version"]
        constraints = [models.UniqueConstraint(fields=["source", "version"], name="feature_source_version_unique")]

    def __str__(self) -> str:
        return f"{self.source.name} v{self.version}"

    @property
    def column_types(self) -> dict[str, str]:
        return {c["name"]: c["type"] for c in self.schema}


class FeatureView(models.Model):
    """A versioned group of features read from one source and keyed by one entity."""

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="feature_views")
    name = models.SlugField(max_length=80)
    version = models.PositiveIntegerField(default=1)
    is_current = models.BooleanField(default=True, help_text="The newest version of this view name")
    entity = models.ForeignKey(Entity, on_delete=models.PROTECT, related_name="views")
    source = models.ForeignKey(DataSource, on_delete=models.PROTECT, related_name="views")
    entity_column = models.CharField(max_length=120, help_text="Source column holding the entity key")
    timestamp_column = models.CharField(max_length=120, help_text="Source column with the event time")
    written_at_column = models.CharField(max_length=120, blank=True,
                                         help_text="Optional source column with the time the row was recorded")
    availability_lag = models.DurationField(help_text="A value describing time t is usable from t + lag on")
    ttl = models.DurationField(null=True, blank=True, help_text="Maximum age of a usable value (empty: no limit)")
    online = models.BooleanField(default=False, help_text="Served from the online store")
    freshness_sla = models.DurationField(null=True, blank=True, help_text="Maximum staleness of the newest value")
    materialize_every = models.DurationField(null=True, blank=True, help_text="Materialization schedule (online views)")
    owner = models.ForeignKey(django_settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    tags = models.JSONField(default=list, blank=True)
    description = models.TextField(blank=True, max_length=5000)
    created_by = models.ForeignKey(django_settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    # Materialization state (online store)
    last_materialized_at = models.DateTimeField(null=True, blank=True)
    materialized_source_version = models.ForeignKey(DataSourceVersion, null=True, blank=True, on_delete=models.SET_NULL,
                                                    related_name="+")
    newest_event_time = models.DateTimeField(null=True, blank=True, help_text="Event time of the newest value served")
    online_row_count = models.BigIntegerField(default=0)
    # ``online.STALE_RULE`` stored (``online.online_stale_refresh`` wherever an input of the rule changes),
    # so the lookup reads a column instead of evaluating the rule on every call
    online_stale = models.BooleanField(default=True, editable=False)

    class Meta:
        ordering = ["name", "-version"]
        constraints = [
            models.UniqueConstraint(fields=["project", "name", "version"], name="feature_view_unique_version"),
            models.UniqueConstraint(fields=["project", "name"], condition=models.Q(is_current=True),
                                    name="feature_view_one_current"),
        ]

    def __str__(self) -> str:
        return f"{self.name} v{self.version}"


class Feature(models.Model):
    view = models.ForeignKey(FeatureView, on_delete=models.CASCADE, related_name="features")
    name = models.CharField(max_length=120, help_text="Source column name (also the feature's name)")
    value_type = models.CharField(max_length=10, choices=ValueType.choices)
    description = models.TextField(blank=True, max_length=2000)
    position = models.PositiveIntegerField(default=0)

    class Meta:
        ordering = ["view", "position"]
        constraints = [models.UniqueConstraint(fields=["view", "name"], name="feature_unique_name_in_view")]

    def __str__(self) -> str:
        return f"{self.view.name}:{self.name}"

    @property
    def reference(self) -> str:
        return f"{self.view.name}:{self.name}"


class FeatureSet(models.Model):
    """An ordered, named list of view features: the input contract of a model.

    ``has_batch_only`` is kept in sync by the services; ``batch_only_features`` names the features.
    ``revision`` increases whenever the items change (used to cache the online lookup plan).
    """

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="feature_sets")
    name = models.SlugField(max_length=80)
    description = models.TextField(blank=True, max_length=5000)
    has_batch_only = models.BooleanField(default=False)
    revision = models.PositiveIntegerField(default=1)
    created_by = models.ForeignKey(django_settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]
        constraints = [models.UniqueConstraint(fields=["project", "name"], name="feature_set_unique_name")]

    def __str__(self) -> str:
        return self.name

    @property
    def ordered_items(self):
        return self.items.select_related("feature__view__entity").order_by("position")

    @property
    def batch_only_features(self) -> list[str]:
        """References (``view:feature``) of the features whose view is not served online."""
        return [it.reference for it in self.ordered_items if not it.feature.view.online]

    @property
    def output_names(self) -> list[str]:
        return [it.output_name for it in self.ordered_items]


class FeatureSetItem(models.Model):
    feature_set = models.ForeignKey(FeatureSet, on_delete=models.CASCADE, related_name="items")
    feature = models.ForeignKey(Feature, on_delete=models.PROTECT, related_name="set_items")
    position = models.PositiveIntegerField()
    output_name = models.CharField(max_length=120, help_text="Column name in training sets and online lookups")

    class Meta:
        ordering = ["feature_set", "position"]
        constraints = [
            models.UniqueConstraint(fields=["feature_set", "position"], name="feature_set_item_unique_position"),
            models.UniqueConstraint(fields=["feature_set", "output_name"], name="feature_set_item_unique_name"),
        ]

    def __str__(self) -> str:
        return f"{self.feature_set.name}[{self.position}] {self.reference}"

    @property
    def reference(self) -> str:
        return f"{self.feature.view.name}:{self.feature.name}"


class TrainingSetStatus(models.TextChoices):
    QUEUED = "queued", "Queued"
    BUILDING = "building", "Building"
    READY = "ready", "Ready"
    FAILED = "failed", "Failed"


class TrainingSet(models.Model):
    """A point-in-time-correct training set: labels joined to a feature set, stored as Parquet."""

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="training_sets")
    name = models.SlugField(max_length=80)
    description = models.TextField(blank=True, max_length=5000)
    feature_set = models.ForeignKey(FeatureSet, on_delete=models.PROTECT, related_name="training_sets")
    status = models.CharField(max_length=10, choices=TrainingSetStatus.choices, default=TrainingSetStatus.QUEUED)
    job = models.ForeignKey(Job, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    error = models.TextField(blank=True)
    # The label file (validated and stored as Parquet before the job starts)
    label_artifact_key = models.CharField(max_length=200)
    label_sha256 = models.CharField(max_length=64)
    label_filename = models.CharField(max_length=255, blank=True)
    label_row_count = models.BigIntegerField(default=0)
    timestamp_column = models.CharField(max_length=120)
    label_columns = models.JSONField(default=list)
    # The result
    artifact_key = models.CharField(max_length=200, blank=True)
    sha256 = models.CharField(max_length=64, blank=True)
    size = models.BigIntegerField(default=0)
    row_count = models.BigIntegerField(default=0)
    rows_without_features = models.BigIntegerField(default=0, help_text="Label rows where every feature is null")
    null_rates = models.JSONField(default=dict, blank=True)
    label_balance = models.JSONField(default=dict, blank=True)
    leakage = models.JSONField(default=dict, blank=True)
    stats = models.JSONField(default=dict, blank=True)
    preview = models.JSONField(default=dict, blank=True)
    # Lineage: the exact source versions read
    source_versions = models.ManyToManyField(DataSourceVersion, blank=True, related_name="training_sets")
    created_by = models.ForeignKey(django_settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)
    built_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [models.UniqueConstraint(fields=["project", "name"], name="training_set_unique_name")]

    def __str__(self) -> str:
        return self.name

    @property
    def is_ready(self) -> bool:
        return self.status == TrainingSetStatus.READY


class OnlineFeatureValue(models.Model):
    """The PostgreSQL online store: one row per (view, entity key) with the latest available values."""

    view = models.ForeignKey(FeatureView, on_delete=models.CASCADE, related_name="online_values")
    entity_key = models.CharField(max_length=200)
    values = models.JSONField(default=dict)
    event_time = models.DateTimeField()
    available_at = models.DateTimeField()
    materialized_at = models.DateTimeField()
    # The lookup's answer for this row, rendered once at materialization: JSON
    # [view id, entity key, values, event time in µs since the epoch] (empty: rendered by the query).
    payload = models.TextField(blank=True, default="")

    class Meta:
        constraints = [models.UniqueConstraint(fields=["view", "entity_key"], name="online_value_unique_key")]

    def __str__(self) -> str:
        return f"{self.view_id}:{self.entity_key}"
