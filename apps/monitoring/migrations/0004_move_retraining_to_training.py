# The retraining models moved to the training app; their tables stay (state-only change).
from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [("monitoring", "0003_window_feature_freshness")]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.DeleteModel(name="PolicyFiring"),
                migrations.DeleteModel(name="RetrainingPolicy"),
            ],
            database_operations=[],
        ),
    ]
