"""Pub/Sub and Cloud Monitoring clients for `eventsctl dlq`, and the translation of their
failures into one-line errors an on-call engineer can act on."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from typing import Any

from events_infra.dlq.errors import DlqError
from events_infra.dlq.target import DlqTarget

MONITORING_ENDPOINT_ENV = "EVENTSCTL_MONITORING_ENDPOINT"
"""host:port of a Cloud Monitoring API to use instead of Google's (plaintext, loopback only)."""

PREFLIGHT_TIMEOUT_S = 10.0
CALL_BUDGET_S = 10.0
"""Longest one read-only call (with its retries) may take before the command gives up."""


def bounded() -> dict[str, Any]:
    """`retry`/`timeout` arguments that make a GAPIC call give up within CALL_BUDGET_S (the
    client's defaults retry an unreachable service for up to 600 s)."""
    from google.api_core import exceptions as gexc
    from google.api_core.retry import Retry, if_exception_type

    transient = if_exception_type(gexc.ServiceUnavailable, gexc.InternalServerError)
    retry = Retry(predicate=transient, initial=0.2, maximum=2.0, timeout=CALL_BUDGET_S)
    return {"retry": retry, "timeout": CALL_BUDGET_S / 2}


def subscriber_client() -> Any:
    from google.cloud import pubsub_v1

    return pubsub_v1.SubscriberClient()


def publisher_client() -> Any:
    """The Pub/Sub publisher API client (emulator-aware): replay sends one request per ordering
    key through it, with explicit deadlines (`outbox.key_publisher`)."""
    from events_infra.pubsub.key_publisher import make_publisher

    return make_publisher()


def metrics_client() -> Any | None:
    """A Cloud Monitoring client, or None where there is none (the emulator has no Monitoring)."""
    endpoint = os.environ.get(MONITORING_ENDPOINT_ENV)
    if endpoint:
        host = endpoint.rsplit(":", 1)[0]
        if host not in {"127.0.0.1", "localhost", "[::1]"}:
            raise DlqError(
                f"{MONITORING_ENDPOINT_ENV}={endpoint}: only a loopback address may be used "
                "without TLS"
            )
        import grpc
        from google.auth.credentials import AnonymousCredentials
        from google.cloud import monitoring_v3
        from google.cloud.monitoring_v3.services.metric_service.transports import (
            MetricServiceGrpcTransport,
        )

        transport = MetricServiceGrpcTransport(
            channel=grpc.insecure_channel(endpoint), credentials=AnonymousCredentials()
        )
        return monitoring_v3.MetricServiceClient(transport=transport)
    if os.environ.get("PUBSUB_EMULATOR_HOST"):
        return None
    from google.cloud import monitoring_v3

    return monitoring_v3.MetricServiceClient()


def preflight(subscriber: Any, target: DlqTarget) -> Any:
    """Fetch the dead-letter subscription once, fast: proves Pub/Sub is reachable, the
    subscription exists and we may read it, before anything is pulled or changed."""
    with pubsub_errors(target):
        return subscriber.get_subscription(
            subscription=target.subscription_path, timeout=PREFLIGHT_TIMEOUT_S, retry=None
        )


@contextlib.contextmanager
def pubsub_errors(target: DlqTarget, what: str | None = None) -> Iterator[None]:
    """Google API failures -> DlqError naming the resource and the fix."""
    from google.api_core import exceptions as gexc
    from google.auth.exceptions import DefaultCredentialsError

    resource = what or f"subscription {target.dead_letter_subscription!r}"
    where = f"Pub/Sub emulator at {target.emulator}" if target.emulator else "Pub/Sub"
    try:
        yield
    except gexc.NotFound as err:
        raise DlqError(
            f"{resource} not found in project {target.project} ({error_detail(err)}); check "
            "--stack and --project, or deploy the stack (pulumi up / eventsctl local up)"
        ) from None
    except gexc.PermissionDenied as err:
        raise DlqError(
            f"permission denied on {resource} in project {target.project} ({error_detail(err)}); "
            "ask for the DLQ operator grants (access.dlq_operators in the stack config)"
        ) from None
    except (gexc.ServiceUnavailable, gexc.DeadlineExceeded, gexc.RetryError) as err:
        hint = (
            "start it with `eventsctl local up` or unset PUBSUB_EMULATOR_HOST"
            if target.emulator
            else "check the network and `gcloud auth application-default login`"
        )
        raise DlqError(f"cannot reach {where} ({error_detail(err)}); {hint}") from None
    except (gexc.Unauthenticated, DefaultCredentialsError) as err:
        raise DlqError(
            f"no usable Google credentials ({error_detail(err)}); run "
            "`gcloud auth application-default login`"
        ) from None
    except gexc.GoogleAPICallError as err:
        raise DlqError(f"{where} refused the request on {resource}: {error_detail(err)}") from None


def error_detail(err: BaseException) -> str:
    """A Google API error's message, first line, at most 200 characters."""
    message = getattr(err, "message", None) or str(err)
    return str(message).strip().splitlines()[0][:200] if message else type(err).__name__
