"""A small IAM admin API on loopback (GetServiceAccount, the one read `eventsctl adopt plan`
makes), so the real `google-cloud-iam` client runs over a real gRPC channel in tests. Accounts
are what a test puts in `accounts` (emails); anything else is NOT_FOUND, as the API answers."""

from __future__ import annotations

from concurrent import futures
from typing import Any

import grpc
from google.cloud import iam_admin_v1


class IamServer:
    def __init__(self) -> None:
        self.accounts: set[str] = set()
        self.calls: list[str] = []
        self._server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
        handler = grpc.method_handlers_generic_handler(
            "google.iam.admin.v1.IAM",
            {
                "GetServiceAccount": grpc.unary_unary_rpc_method_handler(
                    self._get,
                    request_deserializer=iam_admin_v1.GetServiceAccountRequest.deserialize,
                    response_serializer=iam_admin_v1.ServiceAccount.serialize,
                )
            },
        )
        self._server.add_generic_rpc_handlers((handler,))
        self.port = self._server.add_insecure_port("127.0.0.1:0")

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self) -> IamServer:
        self._server.start()
        return self

    def stop(self) -> None:
        self._server.stop(grace=None)

    def _get(self, request: Any, context: Any) -> Any:
        email = request.name.rsplit("/", 1)[-1]
        self.calls.append(email)
        if email not in self.accounts:
            context.abort(grpc.StatusCode.NOT_FOUND, f"Unknown service account {email}")
        return iam_admin_v1.ServiceAccount(name=request.name, email=email)
