from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("llm", "0003_stream_chunk_ends"),
    ]

    operations = [
        migrations.AddIndex(
            model_name="stream",
            index=models.Index(
                condition=models.Q(("status__in", ["pending", "streaming"])),
                fields=["session"],
                name="stream_running",
            ),
        ),
    ]
