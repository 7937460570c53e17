# The models moved here from other apps with their tables (db_table keeps each old name), so this
# migration changes only Django's state; content types follow the models to keep permissions and admin history.

import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models


MOVED = [('registry', 'trainingjob'), ('monitoring', 'retrainingpolicy'), ('monitoring', 'policyfiring')]


def content_types_forward(apps, schema_editor):
    ContentType = apps.get_model("contenttypes", "ContentType")
    for old_app, model in MOVED:
        if not ContentType.objects.filter(app_label="training", model=model).exists():
            ContentType.objects.filter(app_label=old_app, model=model).update(app_label="training")


def content_types_backward(apps, schema_editor):
    ContentType = apps.get_model("contenttypes", "ContentType")
    for old_app, model in MOVED:
        ContentType.objects.filter(app_label="training", model=model).update(app_label=old_app)


STATE_OPERATIONS = [
    migrations.CreateModel(
        name='RetrainingPolicy',
        fields=[
            ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
            ('enabled', models.BooleanField(default=True)),
            ('triggers', models.JSONField(blank=True, default=list)),
            ('cooldown_minutes', models.PositiveIntegerField(default=1440)),
            ('max_firings', models.PositiveIntegerField(default=2)),
            ('max_firings_period_hours', models.PositiveIntegerField(default=168)),
            ('min_new_labels', models.PositiveIntegerField(default=500)),
            ('training_window_days', models.PositiveIntegerField(default=30)),
            ('holdout_fraction', models.FloatField(default=0.2)),
            ('note', models.CharField(blank=True, max_length=300)),
            ('created_at', models.DateTimeField(auto_now_add=True)),
            ('updated_at', models.DateTimeField(auto_now=True)),
            ('created_by', models.ForeignKey(null=True, on_delete=django.db.models.deletion.SET_NULL, related_name='+', to=settings.AUTH_USER_MODEL)),
            ('deployment', models.OneToOneField(on_delete=django.db.models.deletion.CASCADE, related_name='retraining_policy', to='deployments.deployment')),
            ('updated_by', models.ForeignKey(null=True, on_delete=django.db.models.deletion.SET_NULL, related_name='+', to=settings.AUTH_USER_MODEL)),
        ],
        options={
            'db_table': 'monitoring_retrainingpolicy',
        },
    ),
    migrations.CreateModel(
        name='TrainingJob',
        fields=[
            ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
            ('label_source', models.CharField(choices=[('file', 'Uploaded label file'), ('outcomes', 'Monitoring outcomes')], max_length=10)),
            ('label_source_detail', models.CharField(blank=True, max_length=300)),
            ('label_artifact_key', models.CharField(max_length=200)),
            ('label_sha256', models.CharField(max_length=64)),
            ('label_rows', models.PositiveIntegerField(default=0)),
            ('timestamp_column', models.CharField(default='event_timestamp', max_length=120)),
            ('label_column', models.CharField(max_length=120)),
            ('window_start', models.DateTimeField(blank=True, null=True)),
            ('window_end', models.DateTimeField(blank=True, null=True)),
            ('holdout_split_at', models.DateTimeField(blank=True, null=True)),
            ('holdout_fraction', models.FloatField(blank=True, default=0.2, null=True)),
            ('metrics', models.JSONField(blank=True, default=dict)),
            ('logs', models.TextField(blank=True)),
            ('trigger', models.CharField(choices=[('manual', 'Started by a person'), ('policy', 'Retraining policy')], default='manual', max_length=10)),
            ('note', models.CharField(blank=True, max_length=300)),
            ('idempotency_key', models.CharField(blank=True, max_length=120, null=True, unique=True)),
            ('created_at', models.DateTimeField(auto_now_add=True)),
            ('updated_at', models.DateTimeField(auto_now=True)),
            ('feature_set', models.ForeignKey(on_delete=django.db.models.deletion.PROTECT, related_name='+', to='features.featureset')),
            ('job', models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.SET_NULL, related_name='+', to='projects.job')),
            ('model', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='training_jobs', to='registry.registeredmodel')),
            ('parent_version', models.ForeignKey(on_delete=django.db.models.deletion.PROTECT, related_name='training_jobs', to='registry.modelversion')),
            ('project', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='training_jobs', to='projects.project')),
            ('requested_by', models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.SET_NULL, related_name='+', to=settings.AUTH_USER_MODEL)),
            ('result_version', models.OneToOneField(blank=True, null=True, on_delete=django.db.models.deletion.SET_NULL, related_name='training_job', to='registry.modelversion')),
            ('training_set', models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.SET_NULL, related_name='+', to='features.trainingset')),
        ],
        options={
            'db_table': 'registry_trainingjob',
            'ordering': ['-created_at', '-id'],
        },
    ),
    migrations.CreateModel(
        name='PolicyFiring',
        fields=[
            ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
            ('trigger', models.CharField(max_length=12)),
            ('episode_key', models.CharField(max_length=120)),
            ('reason', models.CharField(max_length=500)),
            ('status', models.CharField(choices=[('skipped', 'Did not fire'), ('training', 'Training'), ('validating', 'Validating new version'), ('shadow', 'Shadow running'), ('awaiting_review', 'Promotion request awaiting review'), ('stopped', 'Stopped'), ('failed', 'Failed')], max_length=16)),
            ('outcome', models.TextField(blank=True)),
            ('new_labels', models.PositiveIntegerField(default=0)),
            ('label_rows', models.PositiveIntegerField(default=0)),
            ('max_outcome_id', models.BigIntegerField(default=0)),
            ('shadow_run_id', models.BigIntegerField(blank=True, null=True)),
            ('promotion_request_id', models.BigIntegerField(blank=True, null=True)),
            ('steps', models.JSONField(blank=True, default=list)),
            ('checks', models.PositiveIntegerField(default=1)),
            ('created_at', models.DateTimeField(auto_now_add=True)),
            ('fired_at', models.DateTimeField(blank=True, null=True)),
            ('updated_at', models.DateTimeField(auto_now=True)),
            ('actor', models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.SET_NULL, related_name='+', to=settings.AUTH_USER_MODEL)),
            ('alert', models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.SET_NULL, related_name='+', to='monitoring.alert')),
            ('version', models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.SET_NULL, related_name='+', to='registry.modelversion')),
            ('policy', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='firings', to='training.retrainingpolicy')),
            ('training_job', models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.SET_NULL, related_name='+', to='training.trainingjob')),
        ],
        options={
            'db_table': 'monitoring_policyfiring',
            'ordering': ['-created_at', '-id'],
        },
    ),
    migrations.AddIndex(
        model_name='trainingjob',
        index=models.Index(fields=['project', '-created_at'], name='trainingjob_project_time'),
    ),
    migrations.AddConstraint(
        model_name='policyfiring',
        constraint=models.UniqueConstraint(fields=('policy', 'episode_key'), name='policy_firing_once_per_episode'),
    ),
]


class Migration(migrations.Migration):

    initial = True

    dependencies = [
        ('deployments', '0005_move_release_models_to_releases'),
        ('features', '0002_onlinefeaturevalue_payload'),
        ('monitoring', '0004_move_retraining_to_training'),
        ('projects', '0001_initial'),
        ('registry', '0005_move_trainingjob_to_training'),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
        ('contenttypes', '0002_remove_content_type_name'),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(state_operations=STATE_OPERATIONS, database_operations=[]),
        migrations.RunPython(content_types_forward, content_types_backward),
    ]
