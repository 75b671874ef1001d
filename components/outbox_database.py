"""`OutboxDatabase`: the Cloud SQL for PostgreSQL instance, database and users behind the outbox,
with the schema applied by `OutboxSchema` during `pulumi up`.
"""

from __future__ import annotations

import pulumi
import pulumi_gcp as gcp
import pulumi_random as random

from events_infra.components.args import OutboxDatabaseArgs
from events_infra.components.migration_job import JobMigrationProvider
from events_infra.components.outbox_schema import MigrationProvider, OutboxSchema
from events_infra.stack_config import pulumi_names as names
from events_infra.stack_config.topology import DatabaseConfig

SERVICE_ACCOUNT_SUFFIX = ".gserviceaccount.com"
WRITER_ROLE = "events_outbox_writer"
"""PostgreSQL role from migration 0002: insert events into the outbox, nothing else."""


def iam_database_user(email: str) -> tuple[str, str]:
    """Cloud SQL's (user name, user type) for an IAM principal: service accounts drop the
    `.gserviceaccount.com` suffix (PostgreSQL's 63-character limit), people keep their email."""
    if email.endswith(SERVICE_ACCOUNT_SUFFIX):
        return email.removesuffix(SERVICE_ACCOUNT_SUFFIX), "CLOUD_IAM_SERVICE_ACCOUNT"
    return email, "CLOUD_IAM_USER"


class OutboxDatabase(pulumi.ComponentResource):
    """Instance, database, optional password user, migration user and schema for one stack.

    With `database.existing` the instance and database are the service's own: they are named,
    not declared (the stack can neither change nor delete them), and the schema, users and
    grants go into them. Public fields: `instance` and `database` (None when existing),
    `instance_name`, `database_name`, `connection_name` (for the relay and connectors),
    `password_user` and `password` (a Pulumi secret; never exported in plain text), `schema`.
    """

    def __init__(
        self,
        name: str,
        spec: OutboxDatabaseArgs,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        """`spec.migration_image` (the project's image by digest) is needed when the instance
        has only a private IP: the schema is then applied by a Cloud Run job inside the VPC."""
        super().__init__(names.OUTBOX_DATABASE_TYPE, name, None, opts)
        migration_image = spec.migration_image
        config = spec.database
        if config is None:
            raise ValueError("OutboxDatabase needs events-infra:database in the stack config")
        project = self._project = spec.project

        self.instance: gcp.sql.DatabaseInstance | None = None
        self.database: gcp.sql.Database | None = None
        if config.existing:
            self.instance_name: pulumi.Input[str] = config.instance
            self.database_name: pulumi.Input[str] = config.database
            self.connection_name = pulumi.Output.from_input(
                f"{project}:{config.region}:{config.instance}"
            )
        else:
            self._declare_instance(name, spec)

        self.schema: OutboxSchema | None = None
        self.migration_user: gcp.sql.User | None = None
        self.migration_account: gcp.serviceaccount.Account | None = None
        self.deployer_acts_as_migration: gcp.serviceaccount.IAMMember | None = None
        if config.migration_principal:
            migrator = config.migration_principal
            if config.private_ip_only:
                # the job runs as an account of its own, not as the deployer: its IAM database
                # user owns the schema; the deployer may start the job as it, nothing more
                migrator = self._migration_identity(name, spec, config.migration_principal)
            user_name, user_type = iam_database_user(migrator)
            # cloudsqlsuperuser: since PostgreSQL 15 a new user may not create tables in the
            # public schema, and the migration user must.
            self.migration_user = gcp.sql.User(
                f"{name}-migration-user",
                name=user_name,
                project=project,
                instance=self.instance_name,
                type=user_type,
                database_roles=["cloudsqlsuperuser"],
                opts=pulumi.ResourceOptions(
                    parent=self,
                    depends_on=[self.migration_account] if self.migration_account else [],
                ),
            )
            self.migration_job: gcp.cloudrunv2.Job | None = None
            self.migration_grants: list[gcp.projects.IAMMember] = []
            job_path: pulumi.Output[str] | None = None
            depends: list[pulumi.Resource] = [
                r
                for r in (self.database, self.migration_user, self.deployer_acts_as_migration)
                if r is not None
            ]
            if config.private_ip_only:
                if not migration_image:
                    raise ValueError("a private-IP outbox needs migration_image (relay.image)")
                self.migration_job = self._migration_job(
                    name, spec, migration_image, user_name, migrator
                )
                job_path = pulumi.Output.concat(
                    "projects/", project, "/locations/", config.region, "/jobs/",
                    self.migration_job.name,
                )  # fmt: skip
                # the job connects with these grants: the first run must not start before them
                depends += [self.migration_job, *self.migration_grants]
            self.schema = OutboxSchema(
                f"{name}-schema",
                instance_connection_name=self.connection_name,
                database=self.database_name,
                user=self.migration_user.name,
                private_ip=config.private_ip_only,
                provider=JobMigrationProvider() if job_path is not None else MigrationProvider(),
                job=job_path,
                opts=pulumi.ResourceOptions(parent=self, depends_on=depends),
            )

        self.password: pulumi.Output[str] | None = None
        self.password_user: gcp.sql.User | None = None
        if config.password_user:
            generated = random.RandomPassword(
                f"{name}-password",
                length=32,
                special=False,
                opts=pulumi.ResourceOptions(parent=self),
            )
            self.password = pulumi.Output.secret(generated.result)
            self.password_user = gcp.sql.User(
                f"{name}-user-{config.password_user}",
                name=config.password_user,
                project=project,
                instance=self.instance_name,
                type="BUILT_IN",
                password=self.password,
                # The application's user: insert events, nothing else on the outbox (the tables
                # belong to the migration user). The role exists once the schema step has run.
                database_roles=[WRITER_ROLE] if self.schema is not None else None,
                opts=pulumi.ResourceOptions(
                    parent=self, depends_on=[self.schema] if self.schema is not None else []
                ),
            )

        self.register_outputs(
            {
                "connection_name": self.connection_name,
                "database": self.database_name,
                "schema_version": self.schema.schema_version if self.schema else None,
            }
        )

    def _declare_instance(self, name: str, spec: OutboxDatabaseArgs) -> None:
        """The dedicated instance and database of a greenfield stack."""
        config = spec.database
        assert config is not None
        production, project = spec.production, spec.project
        self.instance = gcp.sql.DatabaseInstance(
            names.sql_instance(name),
            name=config.instance,
            project=project,
            region=config.region,
            database_version=config.database_version,
            # Both guards: Pulumi refuses to delete, and the Cloud SQL API refuses too.
            deletion_protection=production,
            settings=self._settings(config, spec),
            opts=pulumi.ResourceOptions(
                parent=self,
                protect=production,
                retain_on_delete=spec.retain_data,
                depends_on=self._private_services_access(name, spec),
            ),
        )
        self.connection_name = self.instance.connection_name
        self.database = gcp.sql.Database(
            names.sql_database(name),
            name=config.database,
            project=project,
            instance=self.instance.name,
            # ABANDON: removing it from the stack leaves the database (and its outbox) in place
            deletion_policy="ABANDON" if spec.retain_data else None,
            opts=pulumi.ResourceOptions(
                parent=self, protect=production, retain_on_delete=spec.retain_data
            ),
        )

        self.instance_name = self.instance.name
        self.database_name = self.database.name

    def _private_services_access(
        self, name: str, spec: OutboxDatabaseArgs
    ) -> list[pulumi.Resource]:
        """With `private_services_access: create`: the allocated range and the Service
        Networking connection a private-IP instance is created on (retained on delete: other
        instances of the network use the peering too). Else nothing (the project's own)."""
        config = spec.database
        assert config is not None
        if config.private_services_access != "create" or config.private_network is None:
            return []
        network_name = config.private_network.rsplit("/", 1)[-1]
        self.private_services_range = gcp.compute.GlobalAddress(
            f"{name}-psa-range",
            name=f"{network_name}-cloudsql-psa"[:63],
            project=spec.project,
            network=config.private_network,
            purpose="VPC_PEERING",
            address_type="INTERNAL",
            prefix_length=16,
            opts=pulumi.ResourceOptions(parent=self, retain_on_delete=True),
        )
        self.private_services_connection = gcp.servicenetworking.Connection(
            f"{name}-psa",
            network=config.private_network,
            service="servicenetworking.googleapis.com",
            reserved_peering_ranges=[self.private_services_range.name],
            deletion_policy="ABANDON",
            opts=pulumi.ResourceOptions(parent=self, retain_on_delete=True),
        )
        return [self.private_services_connection]

    def connect_grants(
        self, prefix: str, member: pulumi.Input[str], parent: pulumi.Resource
    ) -> list[gcp.projects.IAMMember]:
        """`cloudsql.client` and `cloudsql.instanceUser` for `member`, conditioned on this
        instance (Cloud SQL has no instance-level IAM): what an IAM login to the outbox needs."""
        return [
            gcp.projects.IAMMember(
                f"{prefix}-{role.rsplit('.', 1)[-1].lower()}",
                project=self._project,
                role=role,
                member=member,
                condition=gcp.projects.IAMMemberConditionArgs(
                    title="outbox instance only",
                    expression=pulumi.Output.from_input(self.instance_name).apply(
                        lambda n: f'resource.name == "projects/{self._project}/instances/{n}"'
                    ),
                ),
                opts=pulumi.ResourceOptions(parent=parent),
            )
            for role in ("roles/cloudsql.client", "roles/cloudsql.instanceUser")
        ]

    def _migration_identity(self, name: str, spec: OutboxDatabaseArgs, deployer: str) -> str:
        """The migration job's own service account (its email), and the one grant the deployer
        gets on it: `iam.serviceAccountUser`, to run the job as it (actAs)."""
        project = spec.project
        email = f"{spec.migration_account}@{project}.iam.gserviceaccount.com"
        self.migration_account = gcp.serviceaccount.Account(
            f"{name}-migration-account",
            project=project,
            account_id=spec.migration_account,
            display_name="events-infra outbox migrations (owns the outbox schema)",
            opts=pulumi.ResourceOptions(parent=self),
        )
        self.deployer_acts_as_migration = gcp.serviceaccount.IAMMember(
            f"{name}-migration-act-as",
            service_account_id=self.migration_account.name,
            role="roles/iam.serviceAccountUser",
            member=f"serviceAccount:{deployer}",
            opts=pulumi.ResourceOptions(parent=self),
        )
        return email

    def _migration_job(
        self,
        name: str,
        spec: OutboxDatabaseArgs,
        image: str,
        user_name: str,
        principal: str,
    ) -> gcp.cloudrunv2.Job:
        """`eventsctl outbox migrate` in the relay's image, on the VPC, as the migration
        account (its IAM database user owns the schema; only the conditioned Cloud SQL grants
        are its). Run by OutboxSchema, never retried on its own: a failed migration is rolled
        back and fails `pulumi up` with its error."""
        config = spec.database
        assert config is not None and config.private_network is not None
        account: pulumi.Input[str] = principal
        if self.migration_account is not None:  # the email as an output: created first
            account = self.migration_account.email
        self.migration_grants = self.connect_grants(
            f"{name}-migration", pulumi.Output.concat("serviceAccount:", account), self
        )
        args = pulumi.Output.all(self.connection_name, self.database_name).apply(
            lambda v: [
                "outbox", "migrate", "--cloud-sql-instance", v[0], "--iam-user", user_name,
                "--database", v[1], "--private-ip",
            ]
        )  # fmt: skip
        return gcp.cloudrunv2.Job(
            f"{name}-migrate-job",
            name=spec.migration_job,
            project=spec.project,
            location=config.region,
            deletion_protection=spec.production,
            labels=spec.resource_labels(config.labels),
            template=gcp.cloudrunv2.JobTemplateArgs(
                task_count=1,
                template=gcp.cloudrunv2.JobTemplateTemplateArgs(
                    service_account=account,
                    max_retries=0,
                    timeout="600s",
                    containers=[
                        gcp.cloudrunv2.JobTemplateTemplateContainerArgs(image=image, args=args)
                    ],
                    vpc_access=gcp.cloudrunv2.JobTemplateTemplateVpcAccessArgs(
                        network_interfaces=[
                            gcp.cloudrunv2.JobTemplateTemplateVpcAccessNetworkInterfaceArgs(
                                network=config.private_network, subnetwork=config.subnetwork
                            )
                        ],
                        egress="PRIVATE_RANGES_ONLY",
                    ),
                ),
            ),
            opts=pulumi.ResourceOptions(parent=self),
        )

    @staticmethod
    def _settings(
        config: DatabaseConfig, spec: OutboxDatabaseArgs
    ) -> gcp.sql.DatabaseInstanceSettingsArgs:
        flags = [
            gcp.sql.DatabaseInstanceSettingsDatabaseFlagArgs(
                name="cloudsql.iam_authentication", value="on"
            )
        ]
        if config.logical_decoding:
            flags.append(
                gcp.sql.DatabaseInstanceSettingsDatabaseFlagArgs(
                    name="cloudsql.logical_decoding", value="on"
                )
            )
        return gcp.sql.DatabaseInstanceSettingsArgs(
            tier=config.tier,
            edition=config.edition,
            availability_type=config.availability_type,
            deletion_protection_enabled=spec.production,
            backup_configuration=gcp.sql.DatabaseInstanceSettingsBackupConfigurationArgs(
                enabled=True,
                point_in_time_recovery_enabled=True,
                start_time=config.backup_start_time,
                transaction_log_retention_days=config.transaction_log_retention_days,
                backup_retention_settings=gcp.sql.DatabaseInstanceSettingsBackupConfigurationBackupRetentionSettingsArgs(
                    retained_backups=config.retained_backups, retention_unit="COUNT"
                ),
            ),
            ip_configuration=gcp.sql.DatabaseInstanceSettingsIpConfigurationArgs(
                ipv4_enabled=not config.private_ip_only,
                private_network=config.private_network,
                ssl_mode="ENCRYPTED_ONLY",
            ),
            database_flags=flags,
            user_labels=spec.resource_labels(config.labels),
        )
