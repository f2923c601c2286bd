"""``manage.py ollama_emulator``: serve the Ollama emulator in the foreground, for offline demos
and manual testing where no real Ollama is available."""

from __future__ import annotations

import contextlib

import uvicorn
from django.core.management.base import BaseCommand, CommandError

from llm.emulator import OllamaEmulator, Script
from llm.emulator.script import DEFAULT_MODELS


class Command(BaseCommand):
    help = (
        "Serve an Ollama emulator (a real HTTP server speaking Ollama's API: /api/chat, "
        "/api/generate, /api/tags, /api/show, /api/version) until Ctrl-C. It echoes the last "
        "user message word by word ('Echo: ...'). Point the platform at it with "
        "OLLAMA_URL=http://HOST:PORT. Its behaviour can be changed while it runs: "
        "POST /_emulator/script with JSON fields of llm.emulator.Script (reply, tokens, "
        "num_tokens, delay_ms, delay_max_ms, first_delay_ms, first_delay_max_ms, "
        "failure: http_503|error_line|cut|stall|no_done, "
        "fail_after, error, tool_calls: [{name, arguments}], models), GET /_emulator/log to see "
        "requests and disconnects, POST /_emulator/reset. Example: "
        "python manage.py ollama_emulator --host 127.0.0.1 --port 11434 --delay-ms 30"
    )

    def add_arguments(self, parser):
        parser.add_argument("--host", default="127.0.0.1", help="Address to bind (127.0.0.1).")
        parser.add_argument(
            "--port", type=int, default=11434, help="Port to listen on (11434, Ollama's)."
        )
        parser.add_argument(
            "--delay-ms",
            type=float,
            default=30.0,
            help="Pause between streamed tokens, in ms (30: a visibly streaming answer).",
        )
        parser.add_argument(
            "--first-delay-ms",
            type=float,
            default=0.0,
            help="Pause before the first token, in ms (0).",
        )
        parser.add_argument(
            "--delay-max-ms",
            type=float,
            default=None,
            help="Draw each pause between tokens from --delay-ms to this, in ms (none: fixed).",
        )
        parser.add_argument(
            "--first-delay-max-ms",
            type=float,
            default=None,
            help="Draw each first-token pause from --first-delay-ms to this, in ms (none: fixed).",
        )
        parser.add_argument(
            "--models",
            default=",".join(DEFAULT_MODELS),
            help="Comma-separated models it has; others get Ollama's 404 "
            f"({','.join(DEFAULT_MODELS)}).",
        )
        parser.add_argument("--reply", default=None, help="Fixed answer text instead of the echo.")
        parser.add_argument(
            "--log-level",
            default="info",
            choices=["critical", "error", "warning", "info", "debug"],
            help="uvicorn's log level (info: a line per request; warning: problems only).",
        )

    def handle(self, *args, **options):
        models = [name.strip() for name in options["models"].split(",") if name.strip()]
        if not models:
            raise CommandError("--models needs at least one model name")
        try:
            script = Script(
                reply=options["reply"],
                delay_ms=options["delay_ms"],
                first_delay_ms=options["first_delay_ms"],
                delay_max_ms=options["delay_max_ms"],
                first_delay_max_ms=options["first_delay_max_ms"],
                models=models,
            )
        except ValueError as exc:
            raise CommandError(str(exc)) from exc
        app = OllamaEmulator(script)
        host, port = options["host"], options["port"]
        self.stdout.write(
            f"Ollama emulator on http://{host}:{port} (models: {', '.join(models)}); "
            "Ctrl-C to stop."
        )
        self.stdout.flush()
        config = uvicorn.Config(
            app,
            host=host,
            port=port,
            lifespan="on",
            ws="none",
            log_level=options["log_level"],
            # In-flight (or stalled) streams are cut this long after Ctrl-C.
            timeout_graceful_shutdown=2,
        )
        # uvicorn shuts down gracefully on SIGINT/SIGTERM, then re-raises the signal; the
        # resulting KeyboardInterrupt is the normal way out, not an error.
        with contextlib.suppress(KeyboardInterrupt):
            uvicorn.Server(config).run()
        self.stdout.write("Ollama emulator stopped.")
