"""One frozen Settings, read from the environment (and `.env`) once, at start."""

from __future__ import annotations

import base64
import ipaddress
import json
import os
import re
import secrets
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from dotenv import dotenv_values

from api.networks import parse_networks

ASYMMETRIC_ALGORITHMS = ("EdDSA", "ES256", "RS256")
MIN_SECRET_BYTES = 32
# A spent refresh token retried within this many seconds is a lost answer, not a theft; past
# a minute it is a copy in someone else's hands, whatever the client's excuse.
MAX_REFRESH_REUSE_GRACE = 60
# allow: the manifest's documents and ad-hoc ones; only: the manifest's documents, nothing else.
TRUSTED_DOCUMENTS_MODES = ("allow", "only")


class SettingsError(Exception):
    """The configuration cannot be used; the message names the variable to fix."""


_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


@dataclass(frozen=True, slots=True)
class Settings:
    """Every setting of the contract (docs/API.md, Configuration), typed."""

    app_env: str = "development"
    database_url: str = "sqlite://data/graphgate.sqlite3"
    redis_url: str | None = None
    jwt_secret: str = ""
    jwt_refresh_secret: str = ""
    jwt_algorithm: str = "HS256"
    jwt_keys_dir: str | None = None
    jwt_issuer: str = "graphgate"
    jwt_audience: str = "graphgate-clients"
    access_token_ttl: int = 900
    refresh_token_ttl: int = 2_592_000
    session_max_age: int = 7_776_000
    cors_origins: tuple[str, ...] = ()
    graphiql: bool = True
    introspection: bool = True
    field_suggestions: bool = True
    get_queries: bool = True
    refresh_cookie: bool = False
    host: str = "127.0.0.1"
    port: int = 8000
    workers: int = 1
    jwt_leeway: int = 30
    refresh_reuse_grace: int = 0
    trusted_proxies: tuple[str, ...] = ()
    database_pool_size: int = 10
    database_connect_timeout: int = 2
    database_statement_timeout: int = 5
    roles: tuple[str, ...] = ("user", "admin")
    mail_url: str = "console://"
    public_url: str = "http://127.0.0.1:8000"
    require_verified_email: bool = False
    fresh_auth_max_age: int = 600
    mfa_required_roles: tuple[str, ...] = ()
    # AES-256-GCM keys for TOTP secrets at rest, urlsafe base64: the first encrypts, all decrypt.
    mfa_encryption_key: tuple[str, ...] = ()
    mfa_token_ttl: int = 300
    mfa_issuer: str = "graphgate"
    # Passkeys (WebAuthn): off while the relying party id is empty (production's default).
    webauthn_rp_id: str = ""
    webauthn_rp_name: str = "graphgate"
    webauthn_origins: tuple[str, ...] = ()
    reset_token_ttl: int = 1800
    email_verification_ttl: int = 172_800
    mail_from: str = "graphgate <no-reply@localhost>"
    # Link templates for mailed tokens; "{token}" is replaced (docs/lifecycle.md).
    verify_email_url: str = "http://127.0.0.1:8000/verify-email?token={token}"
    reset_password_url: str = "http://127.0.0.1:8000/reset-password?token={token}"
    cancel_email_change_url: str = "http://127.0.0.1:8000/cancel-email-change?token={token}"
    rate_limit_per_email: str = "10 per 15 minutes"
    rate_limit_per_ip: str = "300 per 15 minutes"
    shutdown_timeout: int = 10
    shutdown_delay: int = 0
    ready_without_redis: bool = False
    max_query_depth: int = 10
    max_aliases: int = 30
    max_tokens: int = 2000
    max_directives: int = 5
    max_fields: int = 600
    max_query_bytes: int = 65_536
    query_cache_bytes: int = 33_554_432
    persisted_queries: bool = True
    trusted_documents: str | None = None
    trusted_documents_mode: str = "allow"
    execution_timeout: int = 10
    password_hash_threads: int = 2
    password_hash_queue: int = 128
    password_hash_max_wait: float = 2.0
    password_hash_nice: int = 5
    max_in_flight: int = 1000
    max_in_flight_sign_in: int = 64
    max_in_flight_refresh: int = 64
    max_in_flight_sign_out: int = 32
    shed_loop_lag: float = 0.04
    max_loop_lag: float = 0.25
    max_websockets: int = 1000
    max_websockets_per_user: int = 10
    max_websockets_per_ip: int = 50
    ws_init_timeout: float = 5.0
    max_subscriptions_per_socket: int = 10
    data_dir: str = "data"
    log_format: str = "text"
    metrics_token: str = ""
    warnings: tuple[str, ...] = field(default=(), compare=False)

    @property
    def warning(self) -> str | None:
        """The one start-up warning about development defaults, if any apply."""
        if not self.warnings:
            return None
        return "DEVELOPMENT DEFAULTS, not for production: " + "; ".join(self.warnings)

    @property
    def is_production(self) -> bool:
        return self.app_env == "production"

    @property
    def passkeys(self) -> bool:
        """Whether passkeys are on: a relying party id is set (always in development)."""
        return bool(self.webauthn_rp_id)

    @property
    def webauthn_allowed_origins(self) -> tuple[str, ...]:
        """WEBAUTHN_ORIGINS, or in development on `localhost`, this server's own origin."""
        if self.webauthn_origins or self.is_production or self.webauthn_rp_id != "localhost":
            return self.webauthn_origins
        return (f"http://localhost:{self.port}",)

    @property
    def asymmetric(self) -> bool:
        return self.jwt_algorithm != "HS256"


def _default(name: str) -> Any:
    """The default of the Settings field read from variable `name`: stated once, on the class."""
    return Settings.__dataclass_fields__[name.lower()].default


def _bool(env: Mapping[str, str], name: str, default: bool | None = None) -> bool:
    raw = env.get(name)
    if raw is None:
        return bool(_default(name) if default is None else default)
    value = raw.strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise SettingsError(f"{name} must be a boolean (on/off, true/false, 1/0), got {raw!r}")


def _int(env: Mapping[str, str], name: str, low: int = 0, high: int | None = None) -> int:
    raw = env.get(name)
    if raw is None or raw.strip() == "":
        return int(_default(name))
    try:
        value = int(raw)
    except ValueError:
        raise SettingsError(f"{name} must be an integer, got {raw!r}") from None
    if value < low or (high is not None and value > high):
        upper = f" and at most {high}" if high is not None else ""
        raise SettingsError(f"{name} must be at least {low}{upper}, got {value}")
    return value


def _float(env: Mapping[str, str], name: str, low: float = 0.0) -> float:
    raw = env.get(name)
    if raw is None or raw.strip() == "":
        return float(_default(name))
    try:
        value = float(raw)
    except ValueError:
        raise SettingsError(f"{name} must be a number, got {raw!r}") from None
    if not value >= low:  # also refuses NaN
        raise SettingsError(f"{name} must be at least {low}, got {value}")
    return value


def _list(env: Mapping[str, str], name: str, default: tuple[str, ...] = ()) -> tuple[str, ...]:
    raw = env.get(name)
    if raw is None:
        return default
    return tuple(part.strip() for part in raw.split(",") if part.strip())


def _choice(env: Mapping[str, str], name: str, choices: tuple[str, ...], default: str) -> str:
    value = (env.get(name) or "").strip().lower() or default
    if value not in choices:
        raise SettingsError(f"{name} must be one of {', '.join(choices)}, got {value!r}")
    return value


def _dev_secrets(data_dir: Path) -> dict[str, str]:
    """Generate (once) and keep the development secrets under the data folder."""
    values = {
        "JWT_SECRET": secrets.token_urlsafe(48),
        "JWT_REFRESH_SECRET": secrets.token_urlsafe(48),
    }
    stored: dict[str, str] = json.loads(
        _written_once(data_dir / "dev-secrets.json", json.dumps(values))
    )
    return stored


def _written_once(path: Path, content: str) -> str:
    """The file's content; written with `content` first if missing. Whole or not at all: two
    processes starting at once on one DATA_DIR (workers, replicas) read the same content,
    never a file the other is still writing."""
    if path.exists():
        return path.read_text(encoding="utf-8")
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:  # mkstemp's mode is 0600
            handle.write(content)
        try:
            os.link(temporary, path)  # atomic, and refuses to replace: the first one wins
        except FileExistsError:
            return path.read_text(encoding="utf-8")
        return content
    finally:
        os.unlink(temporary)


_HOSTNAME = re.compile(
    r"^(?=.{1,253}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)*[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$"
)
_APK_ORIGIN = re.compile(r"^android:apk-key-hash:[A-Za-z0-9_-]{43}$")


def _webauthn(env: Mapping[str, str], production: bool) -> tuple[str, tuple[str, ...]]:
    """WEBAUTHN_RP_ID and WEBAUTHN_ORIGINS, checked: a domain (never an IP address, which
    browsers refuse), and origins on that domain (https, or http on localhost) or Android
    apps' `android:apk-key-hash:` origins. Development defaults to `localhost`."""
    rp_id = env.get("WEBAUTHN_RP_ID", "").strip().lower()
    origins = _list(env, "WEBAUTHN_ORIGINS")
    if not rp_id and origins:
        raise SettingsError("WEBAUTHN_ORIGINS needs WEBAUTHN_RP_ID (the domain passkeys belong to)")
    if not rp_id and not production:
        rp_id = "localhost"
    if not rp_id:
        return "", ()
    if _is_ip(rp_id) or not _HOSTNAME.match(rp_id):
        raise SettingsError(
            f"WEBAUTHN_RP_ID must be a domain name such as example.com (no scheme, port or IP "
            f"address: browsers refuse those), got {rp_id!r}"
        )
    if not origins and (production or rp_id != "localhost"):
        raise SettingsError(
            "WEBAUTHN_RP_ID needs WEBAUTHN_ORIGINS: the comma-separated origins of the pages "
            f"(and apps) that sign in with passkeys, e.g. https://{rp_id}"
        )
    for origin in origins:
        if not _origin_on(origin, rp_id):
            raise SettingsError(
                f"WEBAUTHN_ORIGINS: {origin!r} is not an origin on {rp_id} (https://{rp_id} or "
                f"a subdomain; http only on localhost; or android:apk-key-hash:<sha256>)"
            )
    return rp_id, origins


def _origin_on(origin: str, rp_id: str) -> bool:
    if _APK_ORIGIN.match(origin):
        return True
    parts = urlsplit(origin)
    host = parts.hostname or ""
    on_domain = host == rp_id or host.endswith("." + rp_id)
    secure = parts.scheme == "https" or (parts.scheme == "http" and rp_id == "localhost")
    try:
        _ = parts.port  # a malformed port raises
    except ValueError:
        return False
    exact = origin == f"{parts.scheme}://{parts.netloc}" and parts.netloc.lower() == parts.netloc
    return on_domain and secure and exact


def _is_ip(value: str) -> bool:
    try:
        ipaddress.ip_address(value.strip("[]"))
    except ValueError:
        return False
    return True


def _dev_mfa_key(data_dir: Path) -> str:
    """The development MFA_ENCRYPTION_KEY, generated once into its own file under DATA_DIR."""
    key = base64.urlsafe_b64encode(secrets.token_bytes(32)).decode()
    return _written_once(data_dir / "dev-mfa-key", key).strip()


def _mfa_keys(raw: str) -> tuple[str, ...]:
    """MFA_ENCRYPTION_KEY: comma-separated 32-byte keys in urlsafe base64, newest first."""
    keys = tuple(part.strip() for part in raw.split(",") if part.strip())
    for key in keys:
        try:
            ok = len(base64.urlsafe_b64decode(key.encode())) == 32
        except ValueError:
            ok = False
        if not ok:
            raise SettingsError(
                "MFA_ENCRYPTION_KEY must be comma-separated 32-byte keys in urlsafe base64 "
                "(python -c 'import base64, os; print(base64.urlsafe_b64encode(os.urandom(32))"
                ".decode())')"
            )
    return keys


def _check_secret(name: str, value: str) -> None:
    if len(value.encode("utf-8")) < MIN_SECRET_BYTES:
        raise SettingsError(
            f"{name} must be at least {MIN_SECRET_BYTES} bytes; "
            "generate one with: python -c 'import secrets; print(secrets.token_urlsafe(48))'"
        )


def _check_rate(name: str, raw: str | None) -> None:
    from limits import parse

    if raw and raw.strip():
        try:
            parse(raw)
        except ValueError:
            raise SettingsError(f"{name} must read like '10 per 15 minutes', got {raw!r}") from None


MAIL_SCHEMES = ("console", "smtp", "smtps", "memory")


def _link_template(env: Mapping[str, str], name: str, default: str) -> str:
    value = env.get(name, "").strip() or default
    if "{token}" not in value:
        raise SettingsError(f"{name} must contain the placeholder {{token}}, got {value!r}")
    return value


def load_settings(
    environ: Mapping[str, str] | None = None, env_file: str | Path | None = ".env"
) -> Settings:
    """Read the settings once: `.env` first, the real environment wins over it."""
    env: dict[str, str] = {}
    if env_file is not None and Path(env_file).is_file():
        env.update({k: v for k, v in dotenv_values(env_file).items() if v is not None})
    env.update(os.environ if environ is None else environ)

    app_env = env.get("APP_ENV", _default("APP_ENV")).strip().lower() or _default("APP_ENV")
    if app_env not in ("development", "production"):
        raise SettingsError(f"APP_ENV must be 'development' or 'production', got {app_env!r}")
    production = app_env == "production"
    dev_default = not production
    data_dir = Path(env.get("DATA_DIR", _default("DATA_DIR")))
    warnings: list[str] = []

    algorithm = env.get("JWT_ALGORITHM", _default("JWT_ALGORITHM")).strip() or _default(
        "JWT_ALGORITHM"
    )
    if algorithm not in ("HS256", *ASYMMETRIC_ALGORITHMS):
        raise SettingsError(
            f"JWT_ALGORITHM must be HS256, EdDSA, ES256 or RS256, got {algorithm!r}"
        )
    keys_dir = env.get("JWT_KEYS_DIR") or None
    if algorithm != "HS256" and not keys_dir:
        raise SettingsError(f"JWT_ALGORITHM={algorithm} needs JWT_KEYS_DIR (a folder of PEM keys)")

    secret = env.get("JWT_SECRET", "")
    refresh_secret = env.get("JWT_REFRESH_SECRET", "")
    needed = (
        ["JWT_REFRESH_SECRET"] if algorithm != "HS256" else ["JWT_SECRET", "JWT_REFRESH_SECRET"]
    )
    missing = [name for name in needed if not env.get(name)]
    if missing and production:
        raise SettingsError(
            f"APP_ENV=production needs {' and '.join(missing)}: set each to a random string "
            f"of at least {MIN_SECRET_BYTES} bytes, all different "
            "(python -c 'import secrets; print(secrets.token_urlsafe(48))')"
        )
    if missing:
        generated = _dev_secrets(data_dir)
        secret = secret or generated["JWT_SECRET"]
        refresh_secret = refresh_secret or generated["JWT_REFRESH_SECRET"]
        warnings.append(
            f"generated development secrets for {', '.join(missing)} ({data_dir}/dev-secrets.json)"
        )
    if env.get("JWT_SECRET") or algorithm == "HS256":
        _check_secret("JWT_SECRET", secret)
    _check_secret("JWT_REFRESH_SECRET", refresh_secret)
    if secret and secret == refresh_secret:
        raise SettingsError("JWT_REFRESH_SECRET must differ from JWT_SECRET")

    database_url = env.get("DATABASE_URL", "").strip()
    if not database_url:
        database_url = f"sqlite://{data_dir}/graphgate.sqlite3"
        warnings.append(f"embedded SQLite database ({data_dir}/graphgate.sqlite3)")

    roles = _list(env, "ROLES", _default("ROLES"))
    if "user" not in roles or "admin" not in roles:
        raise SettingsError("ROLES must include 'user' and 'admin'")

    mfa_roles = _list(env, "MFA_REQUIRED_ROLES")
    if unknown := sorted(set(mfa_roles) - set(roles)):
        raise SettingsError(f"MFA_REQUIRED_ROLES names roles not in ROLES: {', '.join(unknown)}")
    mfa_keys = _mfa_keys(env.get("MFA_ENCRYPTION_KEY", ""))
    if not mfa_keys and not production:
        mfa_keys = (_dev_mfa_key(data_dir),)
        warnings.append(f"generated development MFA_ENCRYPTION_KEY ({data_dir}/dev-mfa-key)")

    for name in ("RATE_LIMIT_PER_EMAIL", "RATE_LIMIT_PER_IP"):
        _check_rate(name, env.get(name))
    rp_id, origins = _webauthn(env, production)
    introspection = _bool(env, "INTROSPECTION", dev_default)
    mail_url = env.get("MAIL_URL", "").strip() or _default("MAIL_URL")
    if mail_url.split("://", 1)[0] not in MAIL_SCHEMES or "://" not in mail_url:
        raise SettingsError("MAIL_URL must be console://, smtp://…, smtps://… or memory://")
    if mail_url.startswith(("smtp://", "smtps://")):
        from api.addresses import parse_smtp_url

        try:
            parse_smtp_url(mail_url)
        except ValueError as exc:
            raise SettingsError(str(exc)) from None
    public_url = env.get("PUBLIC_URL", "").strip().rstrip("/")
    if production and not public_url:
        # The default would put http://127.0.0.1 links in every mail.
        raise SettingsError(
            "APP_ENV=production needs PUBLIC_URL: the address users reach, e.g. "
            "https://api.example.com (links in mails start with it)"
        )
    public_url = public_url or _default("PUBLIC_URL")
    metrics_token = env.get("METRICS_TOKEN", "").strip()
    if production and not metrics_token:
        # /metrics shares the public port: without a token anyone could read it.
        raise SettingsError(
            "APP_ENV=production needs METRICS_TOKEN: scrapers send it as "
            "'Authorization: Bearer <token>' (python -c 'import secrets; "
            "print(secrets.token_urlsafe(32))')"
        )
    try:
        proxies = parse_networks("TRUSTED_PROXIES", _list(env, "TRUSTED_PROXIES"))
    except ValueError as exc:
        raise SettingsError(str(exc)) from None
    if (
        env.get("TRUSTED_DOCUMENTS_MODE", "").strip().lower() == "only"
        and not (env.get("TRUSTED_DOCUMENTS") or "").strip()
    ):
        raise SettingsError("TRUSTED_DOCUMENTS_MODE=only needs TRUSTED_DOCUMENTS (a manifest path)")
    return Settings(
        app_env=app_env,
        database_url=database_url,
        redis_url=env.get("REDIS_URL") or None,
        jwt_secret=secret,
        jwt_refresh_secret=refresh_secret,
        jwt_algorithm=algorithm,
        jwt_keys_dir=keys_dir,
        jwt_issuer=env.get("JWT_ISSUER", _default("JWT_ISSUER")),
        jwt_audience=env.get("JWT_AUDIENCE", _default("JWT_AUDIENCE")),
        access_token_ttl=_int(env, "ACCESS_TOKEN_TTL", low=1),
        refresh_token_ttl=_int(env, "REFRESH_TOKEN_TTL", low=1),
        session_max_age=_int(env, "SESSION_MAX_AGE", low=1),
        cors_origins=_list(env, "CORS_ORIGINS"),
        graphiql=_bool(env, "GRAPHIQL", dev_default),
        introspection=introspection,
        field_suggestions=_bool(env, "FIELD_SUGGESTIONS", introspection),
        get_queries=_bool(env, "GET_QUERIES", dev_default),
        refresh_cookie=_bool(env, "REFRESH_COOKIE"),
        host=env.get("HOST", _default("HOST")),
        port=_int(env, "PORT", low=0, high=65535),
        workers=_int(env, "WORKERS", low=1),
        jwt_leeway=_int(env, "JWT_LEEWAY", low=0, high=60),
        refresh_reuse_grace=_int(env, "REFRESH_REUSE_GRACE", low=0, high=MAX_REFRESH_REUSE_GRACE),
        trusted_proxies=tuple(str(network) for network in proxies),
        database_pool_size=_int(env, "DATABASE_POOL_SIZE", low=1),
        database_connect_timeout=_int(env, "DATABASE_CONNECT_TIMEOUT", low=1),
        database_statement_timeout=_int(env, "DATABASE_STATEMENT_TIMEOUT", low=1),
        roles=roles,
        mail_url=mail_url,
        public_url=public_url,
        require_verified_email=_bool(env, "REQUIRE_VERIFIED_EMAIL"),
        fresh_auth_max_age=_int(env, "FRESH_AUTH_MAX_AGE", low=0),
        mfa_required_roles=mfa_roles,
        mfa_encryption_key=mfa_keys,
        mfa_token_ttl=_int(env, "MFA_TOKEN_TTL", low=30, high=900),
        mfa_issuer=env.get("MFA_ISSUER", "").strip() or _default("MFA_ISSUER"),
        webauthn_rp_id=rp_id,
        webauthn_rp_name=env.get("WEBAUTHN_RP_NAME", "").strip() or _default("WEBAUTHN_RP_NAME"),
        webauthn_origins=origins,
        reset_token_ttl=_int(env, "RESET_TOKEN_TTL", low=1),
        email_verification_ttl=_int(env, "EMAIL_VERIFICATION_TTL", low=1),
        mail_from=env.get("MAIL_FROM", "").strip() or _default("MAIL_FROM"),
        verify_email_url=_link_template(
            env, "VERIFY_EMAIL_URL", f"{public_url}/verify-email?token={{token}}"
        ),
        reset_password_url=_link_template(
            env, "RESET_PASSWORD_URL", f"{public_url}/reset-password?token={{token}}"
        ),
        cancel_email_change_url=_link_template(
            env, "CANCEL_EMAIL_CHANGE_URL", f"{public_url}/cancel-email-change?token={{token}}"
        ),
        rate_limit_per_email=env.get(
            "RATE_LIMIT_PER_EMAIL", _default("RATE_LIMIT_PER_EMAIL")
        ).strip(),
        rate_limit_per_ip=env.get("RATE_LIMIT_PER_IP", _default("RATE_LIMIT_PER_IP")).strip(),
        shutdown_timeout=_int(env, "SHUTDOWN_TIMEOUT", low=0),
        shutdown_delay=_int(env, "SHUTDOWN_DELAY", low=0),
        ready_without_redis=_bool(env, "READY_WITHOUT_REDIS", False),
        max_query_depth=_int(env, "MAX_QUERY_DEPTH", low=1),
        max_aliases=_int(env, "MAX_ALIASES", low=1),
        max_tokens=_int(env, "MAX_TOKENS", low=1),
        max_directives=_int(env, "MAX_DIRECTIVES", low=0),
        max_fields=_int(env, "MAX_FIELDS", low=1),
        max_query_bytes=_int(env, "MAX_QUERY_BYTES", low=1),
        query_cache_bytes=_int(env, "QUERY_CACHE_BYTES", low=0),
        persisted_queries=_bool(env, "PERSISTED_QUERIES"),
        trusted_documents=(env.get("TRUSTED_DOCUMENTS") or "").strip() or None,
        trusted_documents_mode=_choice(
            env,
            "TRUSTED_DOCUMENTS_MODE",
            TRUSTED_DOCUMENTS_MODES,
            _default("TRUSTED_DOCUMENTS_MODE"),
        ),
        execution_timeout=_int(env, "EXECUTION_TIMEOUT", low=1),
        password_hash_threads=_int(env, "PASSWORD_HASH_THREADS", low=1),
        password_hash_queue=_int(env, "PASSWORD_HASH_QUEUE", low=0),
        password_hash_max_wait=_float(env, "PASSWORD_HASH_MAX_WAIT", low=0.0),
        password_hash_nice=_int(env, "PASSWORD_HASH_NICE", low=0),
        max_in_flight=_int(env, "MAX_IN_FLIGHT", low=1),
        max_in_flight_sign_in=_int(env, "MAX_IN_FLIGHT_SIGN_IN", low=1),
        max_in_flight_refresh=_int(env, "MAX_IN_FLIGHT_REFRESH", low=1),
        max_in_flight_sign_out=_int(env, "MAX_IN_FLIGHT_SIGN_OUT", low=1),
        shed_loop_lag=_float(env, "SHED_LOOP_LAG", low=0.0),
        max_loop_lag=_float(env, "MAX_LOOP_LAG", low=0.0),
        max_websockets=_int(env, "MAX_WEBSOCKETS", low=0),
        max_websockets_per_user=_int(env, "MAX_WEBSOCKETS_PER_USER", low=1),
        max_websockets_per_ip=_int(env, "MAX_WEBSOCKETS_PER_IP", low=1),
        ws_init_timeout=_float(env, "WS_INIT_TIMEOUT", low=0.1),
        max_subscriptions_per_socket=_int(env, "MAX_SUBSCRIPTIONS_PER_SOCKET", low=1),
        data_dir=str(data_dir),
        log_format=_choice(env, "LOG_FORMAT", ("json", "text"), "json" if production else "text"),
        metrics_token=metrics_token,
        warnings=tuple(warnings),
    )
