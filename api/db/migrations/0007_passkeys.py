from tortoise import migrations
from tortoise.migrations import operations as ops
from orjson import loads
from tortoise.fields.base import OnDelete
from tortoise.fields.data import JSON_DUMPS
from uuid import uuid4
from tortoise import fields
from tortoise.indexes import Index

class Migration(migrations.Migration):
    dependencies = [('models', '0006_mfa')]

    initial = False

    operations = [
        ops.CreateModel(
            name='Passkey',
            fields=[
                ('id', fields.UUIDField(primary_key=True, default=uuid4, unique=True, db_index=True)),
                ('user', fields.ForeignKeyField('models.User', source_field='user_id', db_constraint=True, to_field='id', related_name=False, on_delete=OnDelete.CASCADE)),
                ('credential_id', fields.CharField(unique=True, max_length=1400)),
                ('public_key', fields.TextField(unique=False)),
                ('sign_count', fields.BigIntField(default=0)),
                ('aaguid', fields.CharField(max_length=36)),
                ('transports', fields.JSONField(null=True, encoder=JSON_DUMPS, decoder=loads)),
                ('backup_eligible', fields.BooleanField(default=False)),
                ('backed_up', fields.BooleanField(default=False)),
                ('name', fields.CharField(max_length=64)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
                ('last_used_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
            ],
            options={'table': 'passkeys', 'app': 'models', 'indexes': [Index(fields=['user_id', 'created_at'])], 'pk_attr': 'id', 'table_description': 'A WebAuthn credential of a user: its public key, never a secret.'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='PasskeyChallenge',
            fields=[
                ('id', fields.UUIDField(primary_key=True, default=uuid4, unique=True, db_index=True)),
                ('token_hash', fields.CharField(unique=True, max_length=64)),
                ('purpose', fields.CharField(max_length=16)),
                ('challenge', fields.CharField(max_length=128)),
                ('user', fields.ForeignKeyField('models.User', source_field='user_id', null=True, db_constraint=True, to_field='id', related_name=False, on_delete=OnDelete.CASCADE)),
                ('session_id', fields.UUIDField(null=True)),
                ('mfa_challenge_id', fields.UUIDField(null=True)),
                ('email', fields.CharField(null=True, max_length=254)),
                ('user_verification', fields.BooleanField(default=False)),
                ('ip', fields.CharField(null=True, max_length=64)),
                ('user_agent', fields.CharField(null=True, max_length=500)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
                ('expires_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
                ('used_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
            ],
            options={'table': 'passkey_challenges', 'app': 'models', 'indexes': [Index(fields=['expires_at'])], 'pk_attr': 'id', 'table_description': 'One WebAuthn ceremony in progress: its challenge, single use, and what it is bound to.'},
            bases=['Model'],
        ),
        ops.AddField(
            model_name='Session',
            name='passkey_id',
            field=fields.UUIDField(null=True),
        ),
    ]
