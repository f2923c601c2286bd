from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("llm", "0004_stream_running"),
    ]

    operations = [
        migrations.AddField(
            model_name="stream",
            name="error_message",
            field=models.CharField(
                blank=True,
                help_text="The failure's words as the room was told them, so a reload reads the same.",
                max_length=500,
            ),
        ),
    ]
