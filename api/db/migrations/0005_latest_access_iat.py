from tortoise import migrations
from tortoise.migrations import operations as ops
from tortoise import fields

class Migration(migrations.Migration):
    dependencies = [('models', '0004_revocations')]

    initial = False

    operations = [
        ops.AddField(
            model_name='Session',
            name='latest_access_iat',
            field=fields.BigIntField(default=0, db_default=0),
        ),
    ]
