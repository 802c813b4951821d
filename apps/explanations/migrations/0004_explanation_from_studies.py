"""Explanation moves from apps.studies to apps.explanations, its table (studies_explanation) and
rows unchanged: the model state is created here and deleted from studies (studies 0003); the
database is not touched. Existing databases get the content type renamed so admin permissions
and log entries follow the model."""

import django.db.models.deletion
from django.db import migrations, models


def move_content_type(apps, schema_editor):
    content_type = apps.get_model("contenttypes", "ContentType")
    if not content_type.objects.filter(app_label="explanations", model="explanation").exists():
        content_type.objects.filter(app_label="studies", model="explanation").update(app_label="explanations")


def move_content_type_back(apps, schema_editor):
    content_type = apps.get_model("contenttypes", "ContentType")
    if not content_type.objects.filter(app_label="studies", model="explanation").exists():
        content_type.objects.filter(app_label="explanations", model="explanation").update(app_label="studies")


class Migration(migrations.Migration):
    dependencies = [
        ("contenttypes", "0002_remove_content_type_name"),
        ("explanations", "0003_job_lifecycle"),
        ("studies", "0002_identifying_text"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.CreateModel(
                    name="Explanation",
                    fields=[
                        (
                            "id",
                            models.BigAutoField(
                                auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                            ),
                        ),
                        ("text", models.TextField()),
                        ("technical_summary", models.TextField(blank=True)),
                        ("engine", models.CharField(help_text="litgpt | template", max_length=32)),
                        ("model_name", models.CharField(blank=True, max_length=128)),
                        ("prompt_hash", models.CharField(blank=True, max_length=64)),
                        ("generation_ms", models.FloatField(blank=True, null=True)),
                        ("validation", models.JSONField(blank=True, default=dict)),
                        ("created_at", models.DateTimeField(auto_now_add=True)),
                        (
                            "study",
                            models.OneToOneField(
                                on_delete=django.db.models.deletion.CASCADE,
                                related_name="explanation",
                                to="studies.study",
                            ),
                        ),
                    ],
                    options={"db_table": "studies_explanation"},
                ),
                migrations.AlterField(
                    model_name="explanationedit",
                    name="explanation",
                    field=models.ForeignKey(
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="edits",
                        to="explanations.explanation",
                    ),
                ),
            ],
            database_operations=[],
        ),
        migrations.RunPython(move_content_type, move_content_type_back),
    ]
