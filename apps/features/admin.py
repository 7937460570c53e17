from django.contrib import admin

from .models import DataSource, DataSourceVersion, Entity, FeatureSet, FeatureView, TrainingSet
from .online import online_stale_refresh


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

    # a version added or deleted here changes which version is the latest: the views' stored stale flag follows
    def save_model(self, request, obj, form, change):
        super().save_model(request, obj, form, change)
        online_stale_refresh(source_ids=[obj.source_id])

    def delete_model(self, request, obj):
        super().delete_model(request, obj)
        online_stale_refresh(source_ids=[obj.source_id])

    def delete_queryset(self, request, queryset):
        sources = list(queryset.values_list("source_id", flat=True).distinct())
        super().delete_queryset(request, queryset)
        online_stale_refresh(source_ids=sources)


@admin.register(FeatureView)
class FeatureViewAdmin(admin.ModelAdmin):
    list_display = ("name", "version", "is_current", "project", "entity", "online", "availability_lag", "ttl")
    list_filter = ("online", "is_current")

    def save_model(self, request, obj, form, change):  # an edit after the materialization makes it stale
        super().save_model(request, obj, form, change)
        online_stale_refresh(view_ids=[obj.pk])


@admin.register(FeatureSet)
class FeatureSetAdmin(admin.ModelAdmin):
    list_display = ("name", "project", "has_batch_only")


@admin.register(TrainingSet)
class TrainingSetAdmin(admin.ModelAdmin):
    list_display = ("name", "project", "feature_set", "status", "row_count", "created_at")
