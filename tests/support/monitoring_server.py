"""A small Cloud Monitoring MetricService on loopback, so the real `google-cloud-monitoring`
client runs over a real gRPC channel in tests (Google's API is out of reach here).

It implements the one call `eventsctl dlq status` makes, ListTimeSeries, answering from the
points a test puts in `values` (metric type -> value), the relay's CreateTimeSeries
(recorded in `created`; `refuse_writes` makes it answer UNAVAILABLE), and the AlertPolicyService
call `eventsctl dlq doctor` makes, ListAlertPolicies, answering with the policies a test puts in
`alert_policies` (all of them, one page; `deny_alert_policies` makes it PERMISSION_DENIED, as
Monitoring answers a caller without roles/monitoring.viewer). Every request is kept.
"""

from __future__ import annotations

from concurrent import futures
from datetime import UTC, datetime, timedelta
from typing import Any

import grpc
from google.cloud.monitoring_v3 import types


class MetricServiceServer:
    def __init__(self) -> None:
        self.values: dict[str, float] = {}
        self.requests: list[types.ListTimeSeriesRequest] = []
        self.created: list[types.CreateTimeSeriesRequest] = []
        self.refuse_writes = False
        self.alert_policies: list[types.AlertPolicy] = []
        self.alert_policy_requests: list[types.ListAlertPoliciesRequest] = []
        self.deny_alert_policies = False
        self._server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
        handler = grpc.method_handlers_generic_handler(
            "google.monitoring.v3.MetricService",
            {
                "ListTimeSeries": grpc.unary_unary_rpc_method_handler(
                    self._list_time_series,
                    request_deserializer=types.ListTimeSeriesRequest.deserialize,
                    response_serializer=types.ListTimeSeriesResponse.serialize,
                ),
                "CreateTimeSeries": grpc.unary_unary_rpc_method_handler(
                    self._create_time_series,
                    request_deserializer=types.CreateTimeSeriesRequest.deserialize,
                    response_serializer=lambda _: b"",  # google.protobuf.Empty
                ),
            },
        )
        alert_policies = grpc.method_handlers_generic_handler(
            "google.monitoring.v3.AlertPolicyService",
            {
                "ListAlertPolicies": grpc.unary_unary_rpc_method_handler(
                    self._list_alert_policies,
                    request_deserializer=types.ListAlertPoliciesRequest.deserialize,
                    response_serializer=types.ListAlertPoliciesResponse.serialize,
                ),
            },
        )
        self._server.add_generic_rpc_handlers((handler, alert_policies))
        self.port = self._server.add_insecure_port("127.0.0.1:0")

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self) -> MetricServiceServer:
        self._server.start()
        return self

    def stop(self) -> None:
        self._server.stop(grace=None)

    def _create_time_series(self, request: Any, context: Any) -> None:
        if self.refuse_writes:
            context.abort(grpc.StatusCode.UNAVAILABLE, "Monitoring is unavailable (test)")
        self.created.append(request)

    def _list_alert_policies(self, request: Any, context: Any) -> types.ListAlertPoliciesResponse:
        self.alert_policy_requests.append(request)
        if self.deny_alert_policies:
            context.abort(grpc.StatusCode.PERMISSION_DENIED, "The caller does not have permission")
        project = request.name
        policies = [p for p in self.alert_policies if p.name.startswith(f"{project}/")]
        return types.ListAlertPoliciesResponse(alert_policies=policies)

    def _list_time_series(self, request: Any, context: Any) -> types.ListTimeSeriesResponse:
        self.requests.append(request)
        metric = request.filter.split('metric.type = "', 1)[-1].rstrip('"')
        if metric not in self.values:
            return types.ListTimeSeriesResponse()
        now = datetime.now(UTC)
        points = [
            types.Point(
                interval=types.TimeInterval(end_time=now - timedelta(minutes=age)),
                value=types.TypedValue(int64_value=int(value)),
            )
            for age, value in ((3, self.values[metric] - 1), (1, self.values[metric]))
        ]
        return types.ListTimeSeriesResponse(time_series=[types.TimeSeries(points=points)])
