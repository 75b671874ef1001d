"""A small Cloud SQL Admin API on loopback (the two reads `eventsctl adopt plan` makes), so the
real `google-cloud-sql` client runs over a real gRPC channel in tests (Google's API is out of
reach here). Instances and databases are what a test puts in `instances` / `databases`;
anything else is NOT_FOUND, as the API answers. `deny` makes every call PERMISSION_DENIED."""

from __future__ import annotations

from concurrent import futures
from typing import Any

import grpc
from google.cloud import sqladmin_v1


class SqlAdminServer:
    def __init__(self) -> None:
        self.instances: dict[tuple[str, str], sqladmin_v1.DatabaseInstance] = {}
        self.databases: dict[tuple[str, str, str], sqladmin_v1.Database] = {}
        self.deny = False
        self.calls: list[str] = []
        self._server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
        for service, method, request, response, handler in (
            ("SqlInstancesService", "Get", sqladmin_v1.SqlInstancesGetRequest,
             sqladmin_v1.DatabaseInstance, self._get_instance),
            ("SqlDatabasesService", "Get", sqladmin_v1.SqlDatabasesGetRequest,
             sqladmin_v1.Database, self._get_database),
        ):  # fmt: skip
            self._server.add_generic_rpc_handlers(
                (
                    grpc.method_handlers_generic_handler(
                        f"google.cloud.sql.v1.{service}",
                        {
                            method: grpc.unary_unary_rpc_method_handler(
                                handler,
                                request_deserializer=request.deserialize,
                                response_serializer=response.serialize,
                            )
                        },
                    ),
                )
            )
        self.port = self._server.add_insecure_port("127.0.0.1:0")

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self) -> SqlAdminServer:
        self._server.start()
        return self

    def stop(self) -> None:
        self._server.stop(grace=None)

    def add_instance(self, project: str, name: str, **fields: Any) -> None:
        self.instances[(project, name)] = sqladmin_v1.DatabaseInstance(
            name=name, project=project, connection_name=f"{project}:{fields.get('region')}:{name}",
            **fields,
        )  # fmt: skip

    def add_database(self, project: str, instance: str, name: str) -> None:
        self.databases[(project, instance, name)] = sqladmin_v1.Database(
            name=name, instance=instance, project=project
        )

    def _check(self, context: Any, what: str) -> None:
        self.calls.append(what)
        if self.deny:
            context.abort(grpc.StatusCode.PERMISSION_DENIED, "The caller does not have permission")

    def _get_instance(self, request: Any, context: Any) -> Any:
        self._check(context, f"instances.get {request.instance}")
        found = self.instances.get((request.project, request.instance))
        if found is None:
            context.abort(grpc.StatusCode.NOT_FOUND, "The Cloud SQL instance does not exist.")
        return found

    def _get_database(self, request: Any, context: Any) -> Any:
        self._check(context, f"databases.get {request.instance}/{request.database}")
        found = self.databases.get((request.project, request.instance, request.database))
        if found is None:
            context.abort(grpc.StatusCode.NOT_FOUND, "The database does not exist.")
        return found


NETWORK = "projects/cotton-erp/global/networks/cotton-erp-vpc"


def live_instance(server: SqlAdminServer, project: str, name: str, **settings: Any) -> None:
    """An instance as OutboxDatabase makes it for the prod stack file, with `settings` (tier,
    version, edition, availability, region, flags, network, public_ip, ssl_mode, labels,
    backups, start_time, pitr, log_days, retained, deletion_protection) replacing what a test
    changes."""
    Version, Edition, Availability = (
        sqladmin_v1.SqlDatabaseVersion,
        sqladmin_v1.Settings.Edition,
        sqladmin_v1.SqlAvailabilityType,
    )
    server.add_instance(
        project,
        name,
        region=settings.pop("region", "asia-south1"),
        database_version=getattr(Version, settings.pop("version", "POSTGRES_16")),
        settings=sqladmin_v1.Settings(
            tier=settings.pop("tier", "db-custom-2-7680"),
            edition=getattr(Edition, settings.pop("edition", "ENTERPRISE")),
            availability_type=getattr(Availability, settings.pop("availability", "REGIONAL")),
            database_flags=[
                sqladmin_v1.DatabaseFlags(name=k, value=v)
                for k, v in settings.pop("flags", {"cloudsql.iam_authentication": "on"}).items()
            ],
            ip_configuration=sqladmin_v1.IpConfiguration(
                private_network=settings.pop("network", NETWORK),
                ipv4_enabled=settings.pop("public_ip", False),
                ssl_mode=getattr(
                    sqladmin_v1.IpConfiguration.SslMode, settings.pop("ssl_mode", "ENCRYPTED_ONLY")
                ),
            ),
            user_labels=settings.pop("labels", {"env": "prod", "system": "events-infra"}),
            # as OutboxDatabase sets them on the prod stack
            backup_configuration=sqladmin_v1.BackupConfiguration(
                enabled=settings.pop("backups", True),
                start_time=settings.pop("start_time", "02:00"),
                point_in_time_recovery_enabled=settings.pop("pitr", True),
                transaction_log_retention_days=settings.pop("log_days", 7),
                backup_retention_settings=sqladmin_v1.BackupRetentionSettings(
                    retained_backups=settings.pop("retained", 14)
                ),
            ),
            deletion_protection_enabled=settings.pop("deletion_protection", True),
        ),
    )
    assert not settings, settings
