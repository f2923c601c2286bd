"""Every setting of the platform, read from the environment (CONTRACT section 1).

With no variables set this is the embedded default: SQLite in the project folder, the
in-memory channel layer and a local-memory cache, one process. ``DATABASE_URL`` and
``REDIS_URL`` switch to PostgreSQL and Redis, which is what several workers need to act as
one platform.
"""

from datetime import timedelta
from pathlib import Path

import dj_database_url

from .env import env_bool, env_int, env_list, env_str

BASE_DIR = Path(__file__).resolve().parent.parent.parent

SECRET_KEY = env_str("SECRET_KEY", "dev-insecure-secret-key-change-me-in-production-0123456789")
DEBUG = env_bool("DEBUG", True)
ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", "localhost,127.0.0.1,[::1],testserver")

INSTALLED_APPS = [
    "daphne",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django.contrib.postgres",
    "corsheaders",
    "rest_framework",
    "rest_framework_simplejwt.token_blacklist",
    "knox",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "channels",
    "accounts",
    "chat",
    "llm",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "corsheaders.middleware.CorsMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "chatproject.urls"
ASGI_APPLICATION = "chatproject.asgi.application"
WSGI_APPLICATION = None
APPEND_SLASH = False

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

# --- Database -------------------------------------------------------------------------------
DATABASE_URL = env_str("DATABASE_URL", "")
# SQLite, as the embedded default or a sqlite:// DATABASE_URL, serves several requests at once
# (daphne runs each sync view in a thread of its own) through Django's documented options:
# WAL, so readers and the one writer don't block each other; a write transaction that takes
# the write lock when it begins (IMMEDIATE), so a second writer waits its turn (up to
# ``timeout`` seconds) instead of failing with "database is locked" when its read turns into
# a write; that wait long enough for a large upload's transaction ahead of it.
SQLITE_OPTIONS = {
    "init_command": "PRAGMA journal_mode=WAL",
    "transaction_mode": "IMMEDIATE",
    "timeout": 20,
}
if DATABASE_URL:
    # Health checks: a connection a database restart broke is replaced when taken, instead of
    # failing the request that takes it (tests/reliability/test_postgres_restart.py).
    DATABASES = {
        "default": dj_database_url.parse(DATABASE_URL, conn_max_age=0, conn_health_checks=True)
    }
    if DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql":
        # Async code must not keep connections across calls (TRAPS: CONN_MAX_AGE leaks);
        # psycopg's pool gives the reuse back without the leak. With CONN_HEALTH_CHECKS the
        # pool checks each connection it hands out (psycopg_pool's
        # ``ConnectionPool.check_connection``: one empty query) and replaces a dead one.
        DATABASES["default"].setdefault("OPTIONS", {})["pool"] = {
            "min_size": env_int("DATABASE_POOL_MIN", 2),
            "max_size": env_int("DATABASE_POOL_MAX", 20),
            "timeout": 10,
        }
    elif DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
        # Options in the URL's query, if any, stand over these.
        DATABASES["default"]["OPTIONS"] = {
            **SQLITE_OPTIONS,
            **DATABASES["default"].get("OPTIONS", {}),
        }
else:
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": BASE_DIR / "db.sqlite3",
            "OPTIONS": SQLITE_OPTIONS,
        }
    }
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Redis: channel layer and cache ---------------------------------------------------------
REDIS_URL = env_str("REDIS_URL", "")
# Which stock channels-redis layer serves REDIS_URL: "pubsub" (default) or "core" (bench/
# fanout.py measures both). Any process with a layer of the same backend, hosts and prefix
# can broadcast to the sockets (docs/websocket.md, "Broadcasting from another process").
CHANNEL_LAYER_BACKENDS = {
    "pubsub": "channels_redis.pubsub.RedisPubSubChannelLayer",
    "core": "channels_redis.core.RedisChannelLayer",
}
CHANNEL_LAYER = env_str("CHANNEL_LAYER", "pubsub").strip().lower()
if CHANNEL_LAYER not in CHANNEL_LAYER_BACKENDS:
    raise ValueError(f"CHANNEL_LAYER must be pubsub or core, got {CHANNEL_LAYER!r}")
# Prefix of every Redis key and channel the platform uses: the channel layer's groups, the
# cache, and the gateway's presence, throttles and offline queues. Platforms sharing one
# Redis must differ here: the groups ``user-<id>`` (bans) would otherwise cross over.
REALTIME_PREFIX = env_str("REALTIME_PREFIX", "chat")
if REDIS_URL:
    CHANNEL_LAYERS = {
        "default": {
            # The pub/sub layer publishes once per group and survived a 1000-client connect
            # storm without pool errors where the core layer did not (TRAPS).
            "BACKEND": CHANNEL_LAYER_BACKENDS[CHANNEL_LAYER],
            "CONFIG": {"hosts": [{"address": REDIS_URL}], "prefix": REALTIME_PREFIX},
        }
    }
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": REDIS_URL,
            "KEY_PREFIX": REALTIME_PREFIX,
        }
    }
else:
    CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}

# --- Auth -----------------------------------------------------------------------------------
AUTH_USER_MODEL = "accounts.User"
# Django's password backend, refusing bot accounts on every login door.
AUTHENTICATION_BACKENDS = ["accounts.backends.PeopleModelBackend"]
# Bots' API tokens (django-rest-knox, stored hashed): our model, knox's authentication.
KNOX_TOKEN_MODEL = "accounts.BotToken"
REST_KNOX = {
    "TOKEN_TTL": None,
    "TOKEN_PREFIX": "cbt_",
    "AUTH_HEADER_PREFIX": "Token",
}
# knox's own migrations create its ``knox_authtoken`` table even when KNOX_TOKEN_MODEL swaps
# the model out (its 0001 migration has no ``swappable`` option; django-rest-knox issue
# #196): an empty table whose foreign key to ``accounts_user`` makes PostgreSQL refuse the
# TRUNCATE of a flush. Not running them leaves knox with no table of its own, as wanted.
MIGRATION_MODULES = {"knox": None}
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LOGIN_URL = "/login/"
LOGIN_REDIRECT_URL = "/"
LOGOUT_REDIRECT_URL = "/login/"

JWT_ACCESS_SECONDS = env_int("JWT_ACCESS_SECONDS", 300)
JWT_REFRESH_SECONDS = env_int("JWT_REFRESH_SECONDS", 86400)
SIMPLE_JWT = {
    "ACCESS_TOKEN_LIFETIME": timedelta(seconds=JWT_ACCESS_SECONDS),
    "REFRESH_TOKEN_LIFETIME": timedelta(seconds=JWT_REFRESH_SECONDS),
    "ROTATE_REFRESH_TOKENS": True,
    "BLACKLIST_AFTER_ROTATION": True,
    "UPDATE_LAST_LOGIN": False,
}

# django-ratelimit rate for register and token; "off" disables it (load tests).
AUTH_RATE = env_str("AUTH_RATE", "10/m")
RATELIMIT_VIEW = None
RATELIMIT_USE_CACHE = "default"

# Bearer token for /metrics and the detail of /healthz (chatproject.operator_access);
# unset, only staff sessions may read them.
METRICS_TOKEN = env_str("METRICS_TOKEN", "")

# --- Cross-origin ---------------------------------------------------------------------------
CORS_ORIGIN = env_list("CORS_ORIGIN", "http://localhost:5173,http://127.0.0.1:8000")
CORS_ALLOWED_ORIGINS = CORS_ORIGIN
CSRF_TRUSTED_ORIGINS = CORS_ORIGIN
CORS_ALLOW_CREDENTIALS = True

# --- Real-time ------------------------------------------------------------------------------
WS_THROTTLE_TTL = env_int("WS_THROTTLE_TTL", 60000)
WS_THROTTLE_LIMIT = env_int("WS_THROTTLE_LIMIT", 60)
# Events with a rule of their own, per user per minute: the contract's defaults (section 3).
# Not read from the environment; only the benchmarks' settings raise them, to measure what a
# worker carries rather than what the throttle lets through (bench/settings_bench.py).
# session:join is counted per session on one connection (chat.throttles).
WS_EVENT_LIMITS = {
    "session:join": 5,
    "message:send": 30,
    "message:edit": 20,
    "typing:start": 100,
    "stream:request": 10,
}
# New WebSocket connections per user, across workers and doors (CONTRACT section 3): one
# more is refused with RATE_LIMITED and close 4429. Not from the environment either.
WS_CONNECTION_LIMIT = 30
# Posts a minute to one incoming webhook, across workers: one more gets 429 + Retry-After.
WEBHOOK_POST_LIMIT = 30
WS_CONNECTION_WINDOW_MS = 60_000
WS_MAX_FRAME_BYTES = 65536
# The largest frame the server sends (CONTRACT section 3, "Frame size"): the cap the README
# serves daphne and uvicorn with, which applies to outgoing frames too (chat.frame_size).
WS_SEND_MAX_BYTES = 262144
# A session's receipts:update goes out at most once per this many ms per worker, listing the
# readers whose watermarks moved meanwhile (chat.receipt_updates).
RECEIPT_BROADCAST_INTERVAL_MS = env_int("RECEIPT_BROADCAST_INTERVAL_MS", 1000)
# Typing changes of a session go out as one typing:update at most this often per worker
# (chat.typing_updates); a start and a stop inside one interval cancel out.
TYPING_BROADCAST_INTERVAL_MS = env_int("TYPING_BROADCAST_INTERVAL_MS", 500)
# Presence changes are gathered per worker and announced as presence:changes this often
# (chat.presence_updates); a reload inside one interval announces nothing.
PRESENCE_BROADCAST_INTERVAL_MS = env_int("PRESENCE_BROADCAST_INTERVAL_MS", 1000)

# --- LLM ------------------------------------------------------------------------------------
OLLAMA_URL = env_str("OLLAMA_URL", "http://localhost:11434")
OLLAMA_MODEL = env_str("OLLAMA_MODEL", "llama3.2")
STREAM_DELAY = env_int("STREAM_DELAY", 50)
MAX_CONCURRENT_STREAMS = env_int("MAX_CONCURRENT_STREAMS", 10)
# Seconds Ollama may stay silent (first token included) before a stream fails.
OLLAMA_READ_TIMEOUT = env_int("OLLAMA_READ_TIMEOUT", 120)
# num_predict when neither the request nor the agent sets maxTokens.
LLM_DEFAULT_MAX_TOKENS = env_int("LLM_DEFAULT_MAX_TOKENS", 2048)
# Answers grounded in the room's files (llm.indexing, llm.retrieval): the embedding model,
# how many passages an answer is given and within how many characters, and the indexing
# queue's concurrency per worker, attempts per file and backoff before a retry.
OLLAMA_EMBED_MODEL = env_str("OLLAMA_EMBED_MODEL", "nomic-embed-text")
RETRIEVAL_TOP_K = env_int("RETRIEVAL_TOP_K", 8)
RETRIEVAL_MAX_CHARS = env_int("RETRIEVAL_MAX_CHARS", 6000)
INDEX_CONCURRENCY = env_int("INDEX_CONCURRENCY", 2)
INDEX_MAX_ATTEMPTS = env_int("INDEX_MAX_ATTEMPTS", 3)
INDEX_RETRY_MS = env_int("INDEX_RETRY_MS", 10000)

# --- Content --------------------------------------------------------------------------------
PROFANITY_FILTER = env_str("PROFANITY_FILTER", "censor").lower()
ATTACHMENT_MAX_BYTES = env_int("ATTACHMENT_MAX_BYTES", 10 * 1024 * 1024)
MESSAGE_MAX_LENGTH = 10000
# Multipart bodies are checked against ATTACHMENT_MAX_BYTES by the upload view itself.
FILE_UPLOAD_MAX_MEMORY_SIZE = 2 * 1024 * 1024

# --- Static and media -----------------------------------------------------------------------
STATIC_URL = "/static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = BASE_DIR / "staticfiles"
MEDIA_ROOT = Path(env_str("MEDIA_ROOT", str(BASE_DIR / "media")))
MEDIA_URL = "/media/"

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

# --- REST -----------------------------------------------------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "rest_framework_simplejwt.authentication.JWTAuthentication",
        "rest_framework.authentication.SessionAuthentication",
        # Bots: ``Authorization: Token cbt_...`` (django-rest-knox, last use recorded).
        "accounts.bot_auth.BotTokenAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    # DRF's defaults, with a JSON parser that refuses deeply nested bodies with a 400.
    "DEFAULT_PARSER_CLASSES": [
        "chatproject.parsers.JSONParser",
        "rest_framework.parsers.FormParser",
        "rest_framework.parsers.MultiPartParser",
    ],
    "DEFAULT_RENDERER_CLASSES": [
        "rest_framework.renderers.JSONRenderer",
        "rest_framework.renderers.BrowsableAPIRenderer",
    ],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "EXCEPTION_HANDLER": "chatproject.errors.api_exception_handler",
    "UNAUTHENTICATED_USER": "django.contrib.auth.models.AnonymousUser",
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Chat platform API",
    "DESCRIPTION": "Rooms, messages, threads, reactions, attachments and an LLM assistant.",
    "VERSION": "0.1.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "COMPONENT_SPLIT_REQUEST": True,
    # Swagger UI from the installed package: the docs page works offline, no CDN.
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    # drf-spectacular's default hook, then the refusals every operation may answer.
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "chatproject.schema.add_error_responses",
    ],
    # Two choice sets share the field name "role" (a message's, a member's): each its name.
    "ENUM_NAME_OVERRIDES": {
        "MessageRoleEnum": "chat.models.Message.Role",
        "MemberRoleEnum": "chat.models.Membership.Role",
    },
}

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": env_str("LOG_LEVEL", "INFO")},
    "loggers": {
        # Access logs would carry ?token= query strings (TRAPS): keep them at WARNING.
        "django.channels.server": {"level": "WARNING"},
        "daphne.access": {"level": "WARNING"},
        "channels_redis": {"level": "WARNING"},
    },
}

# The shared state's Redis pool (chat.state), per process and event loop: at most this many
# connections; a caller finding all busy waits up to REDIS_POOL_TIMEOUT seconds for one
# rather than failing (a pool that failed at once lost presence updates in bursts).
REDIS_MAX_CONNECTIONS = env_int("REDIS_MAX_CONNECTIONS", 64)
REDIS_POOL_TIMEOUT = env_int("REDIS_POOL_TIMEOUT", 10)
