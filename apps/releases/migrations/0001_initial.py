# The models moved here from other apps with their tables (db_table keeps each old name), so this
# migration changes only Django's state; content types follow the models to keep permissions and admin history.

import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models


MOVED = [('deployments', 'shadowrun'), ('deployments', 'shadowprediction'), ('deployments', 'promotionrequest'), ('deployments', 'promotionreview')]


def content_types_forward(apps, schema_editor):
    ContentType = apps.get_model("contenttypes", "ContentType")
    for old_app, model in MOVED:
        if not ContentType.objects.filter(app_label="releases", model=model).exists():
            ContentType.objects.filter(app_label=old_app, model=model).update(app_label="releases")


def content_types_backward(apps, schema_editor):
    ContentType = apps.get_model("contenttypes", "ContentType")
    for old_app, model in MOVED:
        ContentType.objects.filter(app_label="releases", model=model).update(app_label=old_app)


STATE_OPERATIONS = [
    migrations.CreateModel(
        name='PromotionRequest',
        fields=[
            ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
            ('status', models.CharField(choices=[('open', 'Open'), ('promoted', 'Approved and promoted'), ('rejected', 'Rejected'), ('withdrawn', 'Withdrawn')], default='open', max_length=10)),
            ('justification', models.TextField(max_length=5000)),
            ('artifact_sha256', models.CharField(max_length=64)),
            ('evidence', models.JSONField(default=dict)),
            ('evidence_hash', models.CharField(max_length=64)),
            ('evidence_at', models.DateTimeField()),
            ('gates_passed', models.BooleanField(default=False)),
            ('approvals_required', models.PositiveSmallIntegerField(default=1)),
            ('created_at', models.DateTimeField(auto_now_add=True)),
            ('decided_at', models.DateTimeField(blank=True, null=True)),
            ('decision_comment', models.TextField(blank=True, max_length=5000)),
            ('candidate', models.ForeignKey(on_delete=django.db.models.deletion.PROTECT, related_name='+', to='registry.modelversion')),
            ('decided_by', models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.SET_NULL, related_name='+', to=settings.AUTH_USER_MODEL)),
            ('deployment', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='promotion_requests', to='deployments.deployment')),
            ('production_version', models.ForeignKey(on_delete=django.db.models.deletion.PROTECT, related_name='+', to='registry.modelversion')),
            ('project', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='promotion_requests', to='projects.project')),
            ('requested_by', models.ForeignKey(on_delete=django.db.models.deletion.PROTECT, related_name='+', to=settings.AUTH_USER_MODEL)),
        ],
        options={
            'db_table': 'deployments_promotionrequest',
            'ordering': ['-created_at', '-id'],
        },
    ),
    migrations.CreateModel(
        name='PromotionReview',
        fields=[
            ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
            ('decision', models.CharField(choices=[('approve', 'Approve'), ('reject', 'Reject')], max_length=10)),
            ('comment', models.TextField(max_length=5000)),
            ('override_reason', models.TextField(blank=True, max_length=5000)),
            ('failing_gates', models.JSONField(blank=True, default=list)),
            ('evidence_hash', models.CharField(max_length=64)),
            ('artifact_sha256', models.CharField(max_length=64)),
            ('created_at', models.DateTimeField(auto_now_add=True)),
            ('request', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='reviews', to='releases.promotionrequest')),
            ('reviewer', models.ForeignKey(on_delete=django.db.models.deletion.PROTECT, related_name='+', to=settings.AUTH_USER_MODEL)),
        ],
        options={
            'db_table': 'deployments_promotionreview',
            'ordering': ['created_at', 'id'],
        },
    ),
    migrations.CreateModel(
        name='ShadowRun',
        fields=[
            ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
            ('status', models.CharField(choices=[('active', 'Active'), ('stopped', 'Stopped')], default='active', max_length=10)),
            ('since', models.DateTimeField()),
            ('last_log_id', models.BigIntegerField(default=0)),
            ('scored', models.PositiveIntegerField(default=0)),
            ('failed', models.PositiveIntegerField(default=0)),
            ('last_error', models.CharField(blank=True, max_length=500)),
            ('comparison', models.JSONField(blank=True, default=dict)),
            ('compared_at', models.DateTimeField(blank=True, null=True)),
            ('scored_at', models.DateTimeField(blank=True, null=True)),
            ('started_at', models.DateTimeField(auto_now_add=True)),
            ('stopped_at', models.DateTimeField(blank=True, null=True)),
            ('candidate', models.ForeignKey(on_delete=django.db.models.deletion.PROTECT, related_name='shadow_runs', to='registry.modelversion')),
            ('deployment', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='shadow_runs', to='deployments.deployment')),
            ('started_by', models.ForeignKey(null=True, on_delete=django.db.models.deletion.SET_NULL, related_name='+', to=settings.AUTH_USER_MODEL)),
            ('stopped_by', models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.SET_NULL, related_name='+', to=settings.AUTH_USER_MODEL)),
        ],
        options={
            'db_table': 'deployments_shadowrun',
            'ordering': ['-started_at', '-id'],
        },
    ),
    migrations.CreateModel(
        name='ShadowPrediction',
        fields=[
            ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
            ('request_id', models.UUIDField()),
            ('log_id', models.BigIntegerField()),
            ('created_at', models.DateTimeField()),
            ('production_version_id', models.BigIntegerField()),
            ('production_output', models.JSONField()),
            ('production_score', models.FloatField(null=True)),
            ('candidate_output', models.JSONField()),
            ('candidate_score', models.FloatField(null=True)),
            ('run', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='predictions', to='releases.shadowrun')),
        ],
        options={
            'db_table': 'deployments_shadowprediction',
        },
    ),
    migrations.AddField(
        model_name='promotionrequest',
        name='shadow_run',
        field=models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.SET_NULL, related_name='+', to='releases.shadowrun'),
    ),
    migrations.AddConstraint(
        model_name='shadowrun',
        constraint=models.UniqueConstraint(condition=models.Q(('status', 'active')), fields=('deployment', 'candidate'), name='shadow_one_active_per_candidate'),
    ),
    migrations.AddIndex(
        model_name='shadowprediction',
        index=models.Index(fields=['run', 'log_id'], name='shadow_pred_run_log'),
    ),
    migrations.AddConstraint(
        model_name='shadowprediction',
        constraint=models.UniqueConstraint(fields=('run', 'request_id'), name='shadow_prediction_unique'),
    ),
    migrations.AddIndex(
        model_name='promotionrequest',
        index=models.Index(fields=['project', 'status'], name='promotion_project_status'),
    ),
    migrations.AddConstraint(
        model_name='promotionrequest',
        constraint=models.UniqueConstraint(condition=models.Q(('status', 'open')), fields=('deployment', 'candidate'), name='promotion_one_open_per_candidate'),
    ),
]


class Migration(migrations.Migration):

    initial = True

    dependencies = [
        ('deployments', '0005_move_release_models_to_releases'),
        ('projects', '0001_initial'),
        ('registry', '0005_move_trainingjob_to_training'),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
        ('contenttypes', '0002_remove_content_type_name'),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(state_operations=STATE_OPERATIONS, database_operations=[]),
        migrations.RunPython(content_types_forward, content_types_backward),
    ]
