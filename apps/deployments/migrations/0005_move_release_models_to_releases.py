# Shadow runs and promotion requests moved to the releases app; their tables stay (state-only change).
from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [("deployments", "0004_predictionlog_fewer_indexes")]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.DeleteModel(name="PromotionReview"),
                migrations.DeleteModel(name="PromotionRequest"),
                migrations.DeleteModel(name="ShadowPrediction"),
                migrations.DeleteModel(name="ShadowRun"),
            ],
            database_operations=[],
        ),
    ]
