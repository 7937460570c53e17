# TrainingJob moved to the training app; its table stays (state-only change).
from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [
        ("registry", "0004_trainingjob"),
        ("monitoring", "0004_move_retraining_to_training"),  # PolicyFiring referenced it
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[migrations.DeleteModel(name="TrainingJob")],
            database_operations=[],
        ),
    ]
