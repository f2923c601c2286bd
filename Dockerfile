# The platform's image: daphne serving chatproject.asgi:application on port 8000.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1
WORKDIR /app

COPY requirements/run.lock requirements/run.lock
RUN pip install --require-hashes -r requirements/run.lock

COPY pyproject.toml README.md ./
COPY chatproject chatproject
COPY accounts accounts
COPY chat chat
COPY llm llm
RUN pip install --no-deps --no-build-isolation .

COPY manage.py ./
COPY templates templates
COPY static static
RUN DJANGO_SETTINGS_MODULE=chatproject.settings.local python manage.py collectstatic --noinput -v 0

EXPOSE 8000
CMD ["sh", "-c", "python manage.py migrate --noinput && exec daphne --bind 0.0.0.0 --port 8000 --proxy-headers --websocket-max-message-size 262144 chatproject.asgi:application"]
