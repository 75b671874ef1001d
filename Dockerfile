# The events-infra image: `eventsctl` as entrypoint, running `outbox relay` by default (the
# OutboxRelay component's Cloud Run service) and `outbox migrate` (the schema job).
# The base install plus the `[ops]` extra (eventsctl, the relay): no Pulumi, no embedded PostgreSQL.

# --- build: wheels for the project and its runtime dependencies ------------------------------
FROM python:3.11.11-slim-bookworm AS build
WORKDIR /src
# Dependencies from the hashed lock only (requirements/relay.lock: the `[ops]` extra, pinned and
# hashed, regenerated with `make lock`): a changed or substituted package fails the build.
COPY requirements/relay.lock ./requirements/relay.lock
RUN pip wheel --no-cache-dir --require-hashes --wheel-dir /wheels -r requirements/relay.lock
COPY pyproject.toml README.md ./
COPY src ./src
COPY cli ./cli
COPY components ./components
RUN pip wheel --no-cache-dir --no-deps --wheel-dir /wheels '.[ops]'

# --- run: a slim Python, the wheels, an unprivileged user ------------------------------------
FROM python:3.11.11-slim-bookworm
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1
COPY --from=build /wheels /wheels
# The only wheels there are the ones the build stage made (--no-index): nothing floats here.
# hadolint ignore=DL3013
RUN pip install --no-index --find-links=/wheels 'events-infra[ops]' \
    && rm -rf /wheels \
    && useradd --uid 10001 --no-create-home --shell /usr/sbin/nologin relay
USER 10001
ENTRYPOINT ["eventsctl"]
CMD ["outbox", "relay"]
