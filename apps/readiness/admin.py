from django.contrib import admin

from .models import ReadinessAnswer, ReadinessSnapshot


@admin.register(ReadinessAnswer)
class ReadinessAnswerAdmin(admin.ModelAdmin):
    list_display = ("project", "item_key", "answer", "answered_by", "answered_at")
    list_filter = ("answer",)
    search_fields = ("project__slug", "item_key", "note")


@admin.register(ReadinessSnapshot)
class ReadinessSnapshotAdmin(admin.ModelAdmin):
    list_display = ("project", "taken_at", "kind", "stage", "score", "ml_test_score", "taken_by")
    list_filter = ("stage", "kind")
    search_fields = ("project__slug", "note")
