from django.contrib import admin

from .models import DataSource, DataSourceVersion, Entity, FeatureSet, FeatureView, TrainingSet


@admin.register(Entity)
class EntityAdmin(admin.ModelAdmin):
    list_display = ("name", "project", "join_key", "value_type")


@admin.register(DataSource)
class DataSourceAdmin(admin.ModelAdmin):
    list_display = ("name", "project", "updated_at")


@admin.register(DataSourceVersion)
class DataSourceVersionAdmin(admin.ModelAdmin):
    list_display = ("source", "version", "row_count", "sha256", "created_at")
    readonly_fields = [f.name for f in DataSourceVersion._meta.fields]


@admin.register(FeatureView)
class FeatureViewAdmin(admin.ModelAdmin):
    list_display = ("name", "version", "is_current", "project", "entity", "online", "availability_lag", "ttl")
    list_filter = ("online", "is_current")


@admin.register(FeatureSet)
class FeatureSetAdmin(admin.ModelAdmin):
    list_display = ("name", "project", "has_batch_only")


@admin.register(TrainingSet)
class TrainingSetAdmin(admin.ModelAdmin):
    list_display = ("name", "project", "feature_set", "status", "row_count", "created_at")
