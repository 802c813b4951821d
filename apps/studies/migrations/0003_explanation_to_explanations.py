"""Explanation now belongs to apps.explanations (its 0004 takes over the model state and the
table, studies_explanation, which stays as it is): removed from this app's state only."""

from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [
        ("studies", "0002_identifying_text"),
        ("explanations", "0004_explanation_from_studies"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[migrations.DeleteModel(name="Explanation")],
            database_operations=[],
        ),
    ]
