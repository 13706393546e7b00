from tortoise import migrations
from tortoise.migrations import operations as ops
from tortoise import fields

class Migration(migrations.Migration):
    dependencies = [('models', '0007_passkeys')]

    initial = False

    operations = [
        ops.AddField(
            model_name='PasskeyChallenge',
            name='email',
            field=fields.CharField(null=True, max_length=254),
        ),
    ]
