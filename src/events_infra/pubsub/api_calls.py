"""Bounded Google API calls and one-line errors for them, shared by every tool that reads or
changes Pub/Sub resources (`eventsctl dlq`, `eventsctl adopt`).

The GAPIC clients' defaults retry an unreachable service for up to 600 s; an operator's command
must say within seconds that it cannot reach Pub/Sub, and say it in one line with the fix.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Any

CALL_BUDGET_S = 10.0
"""Longest one read-only call (with its retries) may take before the command gives up."""


def bounded() -> dict[str, Any]:
    """`retry`/`timeout` arguments that make a GAPIC call give up within CALL_BUDGET_S."""
    from google.api_core import exceptions as gexc
    from google.api_core.retry import Retry, if_exception_type

    transient = if_exception_type(gexc.ServiceUnavailable, gexc.InternalServerError)
    retry = Retry(predicate=transient, initial=0.2, maximum=2.0, timeout=CALL_BUDGET_S)
    return {"retry": retry, "timeout": CALL_BUDGET_S / 2}


def error_detail(err: BaseException) -> str:
    """A Google API error's message, first line, at most 200 characters."""
    message = getattr(err, "message", None) or str(err)
    return str(message).strip().splitlines()[0][:200] if message else type(err).__name__


@contextlib.contextmanager
def google_errors(
    error: Callable[[str], Exception],
    resource: str,
    project: str,
    emulator: str | None,
    not_found_hint: str,
    permission_hint: str,
    service: str = "Pub/Sub",
) -> Iterator[None]:
    """Google API failures -> `error(message)`, one line naming the resource and the fix.
    `emulator`: the emulator address `service` is reached at, if any."""
    from google.api_core import exceptions as gexc
    from google.auth.exceptions import DefaultCredentialsError

    where = f"{service} emulator at {emulator}" if emulator else service
    try:
        yield
    except gexc.NotFound as err:
        raise error(
            f"{resource} not found in project {project} ({error_detail(err)}); {not_found_hint}"
        ) from None
    except gexc.PermissionDenied as err:
        raise error(
            f"permission denied on {resource} in project {project} ({error_detail(err)}); "
            f"{permission_hint}"
        ) from None
    except (gexc.ServiceUnavailable, gexc.DeadlineExceeded, gexc.RetryError) as err:
        hint = (
            "start it with `eventsctl local up` or unset PUBSUB_EMULATOR_HOST"
            if emulator
            else "check the network and `gcloud auth application-default login`"
        )
        raise error(f"cannot reach {where} ({error_detail(err)}); {hint}") from None
    except (gexc.Unauthenticated, DefaultCredentialsError) as err:
        raise error(
            f"no usable Google credentials ({error_detail(err)}); run "
            "`gcloud auth application-default login`"
        ) from None
    except gexc.GoogleAPICallError as err:
        raise error(f"{where} refused the request on {resource}: {error_detail(err)}") from None


LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "[::1]"})


def loopback_endpoint(variable: str, error: Callable[[str], Exception]) -> str | None:
    """The host:port in environment `variable` (a stand-in API for tests and local runs), or
    None; `error` when it is not loopback: it is used without TLS or credentials."""
    import os

    endpoint = os.environ.get(variable)
    if endpoint and endpoint.rsplit(":", 1)[0] not in LOOPBACK_HOSTS:
        raise error(f"{variable}={endpoint}: only a loopback address may be used without TLS")
    return endpoint or None


def loopback_client(client_class: Any, transport_class: Any, endpoint: str) -> Any:
    """A GAPIC client over a plaintext channel to a loopback stand-in API, without credentials
    (tests' Monitoring, Cloud SQL Admin and IAM servers)."""
    import grpc
    from google.auth.credentials import AnonymousCredentials

    transport = transport_class(
        channel=grpc.insecure_channel(endpoint), credentials=AnonymousCredentials()
    )
    return client_class(transport=transport)


ACK_IDS_PER_REQUEST = 1000
"""Ack ids per Acknowledge/ModifyAckDeadline request: the official client's own batch size
(`_ACK_IDS_BATCH_SIZE` in its dispatcher), well under the API's request size limit."""


def ack_id_chunks(ack_ids: list[str]) -> Iterator[list[str]]:
    for start in range(0, len(ack_ids), ACK_IDS_PER_REQUEST):
        yield ack_ids[start : start + ACK_IDS_PER_REQUEST]


def modify_deadlines(
    subscriber: Any, subscription: str, ack_ids: list[str], seconds: int, timeout: float
) -> None:
    """Set the ack deadline of held messages, a request per ACK_IDS_PER_REQUEST ids; 0 gives
    them back for redelivery at once ("a nack")."""
    for chunk in ack_id_chunks(ack_ids):
        subscriber.modify_ack_deadline(
            subscription=subscription,
            ack_ids=chunk,
            ack_deadline_seconds=seconds,
            timeout=timeout,
        )
