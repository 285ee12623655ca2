"""The tables. Times are seconds since the epoch (float), portable across SQLite and PostgreSQL."""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Column,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    false,
    true,
)

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_name)s",
        "uq": "uq_%(table_name)s_%(column_0_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

DIGEST = String(200)

repositories = Table(
    "repositories",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("name", String(255), nullable=False, unique=True),
    Column("created_at", Float, nullable=False),
    # Access control ("public" or "private"). Rows made by the content services alone get the defaults.
    # Plain columns, no table constraint: adding one would make SQLite rebuild the table (and cascade).
    Column("visibility", String(16), nullable=False, server_default="private"),
    Column("description", Text, nullable=False, server_default=""),
    # Queue a vulnerability scan of every manifest pushed here.
    Column("scan_on_push", Boolean, nullable=False, server_default=true()),
    # Markdown shown on the repository's page in the web UI (rendered and sanitised there).
    Column("readme", Text, nullable=False, server_default=""),
    # When a manifest was last pushed (0: never), for listing repositories by last push.
    Column("last_pushed_at", Float, nullable=False, server_default="0"),
    Index("ix_repositories_last_pushed_at", "last_pushed_at", "name"),
    # Public repositories by name: listings read the public ones a caller may see without the private.
    Index("ix_repositories_visibility_name", "visibility", "name"),
)

blobs = Table(
    "blobs",
    metadata,
    Column("digest", DIGEST, primary_key=True),
    Column("size", BigInteger, nullable=False),
    Column("created_at", Float, nullable=False),
    # Refreshed whenever an upload or mount links the blob: the GC grace period counts from here.
    Column("linked_at", Float, nullable=False),
)

repository_blobs = Table(
    "repository_blobs",
    metadata,
    Column("repository_id", Integer, ForeignKey("repositories.id", ondelete="CASCADE"), primary_key=True),
    Column("digest", DIGEST, ForeignKey("blobs.digest", ondelete="CASCADE"), primary_key=True),
    Column("created_at", Float, nullable=False),
    Index("ix_repository_blobs_digest", "digest"),
)

manifests = Table(
    "manifests",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("repository_id", Integer, ForeignKey("repositories.id", ondelete="CASCADE"), nullable=False),
    Column("digest", DIGEST, nullable=False),
    Column("media_type", String(255), nullable=False),
    Column("content", LargeBinary, nullable=False),
    Column("size", Integer, nullable=False),
    Column("artifact_type", String(255), nullable=True),
    Column("subject", DIGEST, nullable=True),
    Column("created_at", Float, nullable=False),
    # Since when no tag has pointed at it (pushed by digest, or its last tag moved or deleted); NULL while
    # tagged. The collector removes what stayed untagged past the retention and nothing else needs.
    Column("untagged_at", Float, nullable=True),
    # An image's `os/architecture[/variant]` from its config, recorded at push (migration 0020); NULL for
    # indexes, artifacts and images stored before.
    Column("platform", String(64), nullable=True),
    UniqueConstraint("repository_id", "digest", name="uq_manifests_repository_digest"),
    Index("ix_manifests_subject", "repository_id", "subject"),
    Index("ix_manifests_untagged_at", "untagged_at"),
)

# What each manifest needs: blobs (config, layers) and child manifests (of an index).
manifest_references = Table(
    "manifest_references",
    metadata,
    Column("manifest_id", Integer, ForeignKey("manifests.id", ondelete="CASCADE"), primary_key=True),
    Column("kind", String(8), primary_key=True),
    Column("digest", DIGEST, primary_key=True),
    Index("ix_manifest_references_digest", "digest", "kind"),
)

tags = Table(
    "tags",
    metadata,
    Column("repository_id", Integer, ForeignKey("repositories.id", ondelete="CASCADE"), primary_key=True),
    Column("name", String(128), primary_key=True),
    Column("manifest_id", Integer, ForeignKey("manifests.id"), nullable=False),
    Column("updated_at", Float, nullable=False),
    # Who last pointed the tag where it is (the pusher's user name; None before this was recorded).
    Column("pushed_by", String(64), nullable=True),
    Index("ix_tags_manifest_id", "manifest_id"),
)

uploads = Table(
    "uploads",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("repository_id", Integer, ForeignKey("repositories.id", ondelete="CASCADE"), nullable=False),
    Column("size", BigInteger, nullable=False),
    Column("created_at", Float, nullable=False),
    Column("updated_at", Float, nullable=False),
    # The running hash's state after `size` bytes (see content/resumable_hash.py), so any replica can
    # continue the upload without re-reading what it holds; NULL means re-hash from storage.
    Column("hash_state", LargeBinary, nullable=True),
    # The storage driver's state after `size` bytes (storage/driver.py, Writer.state: an S3 multipart
    # upload's id and parts), so any replica continues the upload's object; NULL for a filesystem.
    Column("storage_state", LargeBinary, nullable=True),
    # The request writing to the session now (`<replica id>/<token>`), and until when its lease holds (one
    # writer per upload).
    Column("writer", String(200), nullable=True),
    Column("writer_until", Float, nullable=True),
)


# Access control. Users and organizations share one name space (a repository's namespace is an account name).
accounts = Table(
    "accounts",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("name", String(64), nullable=False, unique=True),
    Column("kind", String(8), nullable=False),
    Column("full_name", String(255), nullable=False, server_default=""),
    # Users only: an argon2id hash (PHC string), the administrator flag, and whether the user may log in.
    Column("password_hash", String(255), nullable=True),
    Column("is_admin", Boolean, nullable=False, server_default=false()),
    Column("is_active", Boolean, nullable=False, server_default=true()),
    Column("created_at", Float, nullable=False),
    # The last sign-in that was audited: a client's repeated logins within the gap count as one sign-in.
    Column("last_login_at", Float, nullable=True),
    CheckConstraint("kind IN ('user', 'org')", name="ck_accounts_kind"),
)

organization_owners = Table(
    "organization_owners",
    metadata,
    Column("org_id", Integer, ForeignKey("accounts.id", ondelete="CASCADE"), primary_key=True),
    Column("user_id", Integer, ForeignKey("accounts.id", ondelete="CASCADE"), primary_key=True),
    Index("ix_organization_owners_user_id", "user_id"),
)

teams = Table(
    "teams",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("org_id", Integer, ForeignKey("accounts.id", ondelete="CASCADE"), nullable=False),
    Column("name", String(64), nullable=False),
    Column("description", Text, nullable=False, server_default=""),
    Column("created_at", Float, nullable=False),
    UniqueConstraint("org_id", "name", name="uq_teams_org_id_name"),
)

team_members = Table(
    "team_members",
    metadata,
    Column("team_id", Integer, ForeignKey("teams.id", ondelete="CASCADE"), primary_key=True),
    Column("user_id", Integer, ForeignKey("accounts.id", ondelete="CASCADE"), primary_key=True),
    Index("ix_team_members_user_id", "user_id"),
)

# Levels: "read-only", "read-write", "admin".
repository_grants = Table(
    "repository_grants",
    metadata,
    Column("team_id", Integer, ForeignKey("teams.id", ondelete="CASCADE"), primary_key=True),
    Column("repository_id", Integer, ForeignKey("repositories.id", ondelete="CASCADE"), primary_key=True),
    Column("level", String(16), nullable=False),
    Index("ix_repository_grants_repository_id", "repository_id"),
)

# A grant on every repository of the team's organization, present and future.
namespace_grants = Table(
    "namespace_grants",
    metadata,
    Column("team_id", Integer, ForeignKey("teams.id", ondelete="CASCADE"), primary_key=True),
    Column("level", String(16), nullable=False),
)

# Personal access tokens. Only a SHA-256 of the secret is kept: the secret is 256 random bits.
access_tokens = Table(
    "access_tokens",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("public_id", String(32), nullable=False, unique=True),
    Column("user_id", Integer, ForeignKey("accounts.id", ondelete="CASCADE"), nullable=False),
    Column("name", String(100), nullable=False),
    Column("secret_hash", String(64), nullable=False),
    Column("read_only", Boolean, nullable=False, server_default=false()),
    Column("created_at", Float, nullable=False),
    Column("expires_at", Float, nullable=True),
    Column("last_used_at", Float, nullable=True),
    Column("revoked_at", Float, nullable=True),
    Index("ix_access_tokens_user_id", "user_id"),
)

# Refresh tokens (docker login's identity token), bound to the access token they were obtained with, if any.
refresh_tokens = Table(
    "refresh_tokens",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("public_id", String(32), nullable=False, unique=True),
    Column("user_id", Integer, ForeignKey("accounts.id", ondelete="CASCADE"), nullable=False),
    Column("access_token_id", Integer, ForeignKey("access_tokens.id", ondelete="CASCADE"), nullable=True),
    Column("secret_hash", String(64), nullable=False),
    Column("client_id", String(100), nullable=False, server_default=""),
    Column("created_at", Float, nullable=False),
    Column("expires_at", Float, nullable=False),
    Column("last_used_at", Float, nullable=True),
    Column("revoked_at", Float, nullable=True),
    Index("ix_refresh_tokens_user_id", "user_id"),
)

# Browser sessions for /api/v1 (and the UI): the cookie holds the secret, the row its hash.
sessions = Table(
    "sessions",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("public_id", String(32), nullable=False, unique=True),
    Column("user_id", Integer, ForeignKey("accounts.id", ondelete="CASCADE"), nullable=False),
    Column("secret_hash", String(64), nullable=False),
    Column("csrf_token", String(64), nullable=False),
    Column("created_at", Float, nullable=False),
    Column("expires_at", Float, nullable=False),
    # The personal access token the session was signed in with: the session has its rights and ends with
    # it. No foreign key, so SQLite adds the column without rebuilding the table; a token gone ends it too.
    Column("access_token_id", Integer, nullable=True),
)

audit_events = Table(
    "audit_events",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("at", Float, nullable=False),
    Column("actor", String(64), nullable=True),
    Column("address", String(64), nullable=True),
    Column("action", String(64), nullable=False),
    Column("target", String(300), nullable=True),
    Column("outcome", String(16), nullable=False),
    Column("detail", Text, nullable=False, server_default="{}"),
    Index("ix_audit_events_at", "at"),
)

# Login attempts counted as failures per key ("pair:<name>|<address>" or "account:<name>"), for the
# growing delay (see dockyard.auth.throttle).
login_failures = Table(
    "login_failures",
    metadata,
    Column("key", String(128), primary_key=True),
    Column("failures", Integer, nullable=False),
    Column("last_failure_at", Float, nullable=False),
    Column("blocked_until", Float, nullable=False),
    Index("ix_login_failures_last_failure_at", "last_failure_at"),
)

# Vulnerability advisories imported from OSV. `record` is the advisory as OSV JSON, parsed back when
# matching; `source` names the feed that brought it (a record moves to the feed that imported it last).
advisories = Table(
    "advisories",
    metadata,
    Column("id", String(255), primary_key=True),
    Column("source", String(255), nullable=False),
    Column("modified", Float, nullable=True),
    Column("published", Float, nullable=True),
    Column("withdrawn", Boolean, nullable=False, server_default=false()),
    Column("summary", Text, nullable=False, server_default=""),
    Column("record", Text, nullable=False),
    Index("ix_advisories_source", "source"),
)

# The (ecosystem, normalized package name) keys each advisory is found under (`index_keys`), and
# ("", id) for each id it is known by (its own, aliases, upstream). The primary key starts with
# (ecosystem, name), so it is the index lookups use.
advisory_keys = Table(
    "advisory_keys",
    metadata,
    Column("ecosystem", String(255), primary_key=True),
    Column("name", String(512), primary_key=True),
    Column("advisory_id", String(255), ForeignKey("advisories.id", ondelete="CASCADE"), primary_key=True),
    Index("ix_advisory_keys_advisory_id", "advisory_id"),
)

vulndb_imports = Table(
    "vulndb_imports",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("source", String(255), nullable=False),
    Column("started_at", Float, nullable=False),
    Column("finished_at", Float, nullable=False),
    Column("records", Integer, nullable=False),
)

# Background work leased through the database, so each job runs once across replicas. One row per
# (kind, key): enqueueing a queued or running job again does nothing. `state` is queued, running, done or
# failed; a running job whose lease has expired (its replica died) is taken over.
jobs = Table(
    "jobs",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("kind", String(64), nullable=False),
    Column("key", String(512), nullable=False),
    Column("payload", Text, nullable=False, server_default="{}"),
    Column("state", String(16), nullable=False),
    Column("attempts", Integer, nullable=False, server_default="0"),
    Column("run_after", Float, nullable=False),
    Column("lease_until", Float, nullable=True),
    Column("worker", String(128), nullable=True),
    Column("error", Text, nullable=True),
    Column("created_at", Float, nullable=False),
    Column("updated_at", Float, nullable=False),
    UniqueConstraint("kind", "key", name="uq_jobs_kind_key"),
    Index("ix_jobs_state_run_after", "state", "run_after"),
)

# Token signing keys, one set for the cluster. The key with no `retired_at` signs; a retired key still
# verifies until `verify_until` (the tokens it signed have expired by then). `private_key` is PKCS#8 PEM,
# encrypted when the settings give a passphrase.
signing_keys = Table(
    "signing_keys",
    metadata,
    Column("kid", String(64), primary_key=True),
    Column("private_key", LargeBinary, nullable=False),
    Column("created_at", Float, nullable=False),
    Column("retired_at", Float, nullable=True),
    Column("verify_until", Float, nullable=True),
)

# Named leases: periodic work (garbage collection, audit pruning...) runs where the lease is held, so
# once per cluster. Taken and renewed by compare-and-set; a holder that dies lets it expire.
leases = Table(
    "leases",
    metadata,
    Column("name", String(128), primary_key=True),
    Column("holder", String(128), nullable=False),
    Column("until", Float, nullable=False),
    Column("acquired_at", Float, nullable=False),
)

# The replicas of the cluster: each registers itself and beats every few seconds (cluster/replicas.py).
replicas = Table(
    "replicas",
    metadata,
    Column("id", String(128), primary_key=True),
    Column("address", String(255), nullable=False),
    Column("version", String(64), nullable=False),
    Column("started_at", Float, nullable=False),
    Column("heartbeat_at", Float, nullable=False),
)

# Scan results per image manifest digest (one platform of an index), shared by every repository holding
# that digest: the inventory depends only on the layers, the findings only on the inventory and the
# advisories. `evaluated_generation` is the vulnerability database's last import time the findings were
# matched against; a newer import makes them stale.
image_scans = Table(
    "image_scans",
    metadata,
    Column("digest", DIGEST, primary_key=True),
    Column("platform", String(64), nullable=True),
    Column("status", String(16), nullable=False),
    Column("error", Text, nullable=True),
    Column("os_id", String(64), nullable=True),
    Column("os_version", String(64), nullable=True),
    Column("os_name", String(255), nullable=True),
    Column("os_codename", String(64), nullable=True),
    Column("os_like", String(255), nullable=True),
    Column("scanned_at", Float, nullable=True),
    Column("evaluated_at", Float, nullable=True),
    Column("evaluated_generation", Float, nullable=True),
    Index("ix_image_scans_evaluated_generation", "evaluated_generation"),
)

image_packages = Table(
    "image_packages",
    metadata,
    Column("image_digest", DIGEST, ForeignKey("image_scans.digest", ondelete="CASCADE"), primary_key=True),
    Column("seq", Integer, primary_key=True),
    Column("ecosystem", String(32), nullable=False),
    Column("name", String(512), nullable=False),
    Column("version", String(255), nullable=False),
    Column("source_name", String(512), nullable=False),
    Column("source_version", String(255), nullable=False),
    Column("path", Text, nullable=False),
    Column("layer_digest", DIGEST, nullable=False),
    Column("purl", Text, nullable=True),
)

image_findings = Table(
    "image_findings",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("image_digest", DIGEST, ForeignKey("image_scans.digest", ondelete="CASCADE"), nullable=False),
    Column("package_seq", Integer, nullable=False),
    Column("vuln_id", String(255), nullable=False),
    Column("aliases", Text, nullable=False, server_default="[]"),
    Column("severity", String(16), nullable=False),
    Column("score", Float, nullable=True),
    Column("installed_version", String(255), nullable=False),
    Column("fixed_version", String(255), nullable=True),
    Column("summary", Text, nullable=False, server_default=""),
    Index("ix_image_findings_image_digest", "image_digest", "severity"),
)

# A finding hidden for one image and component in one repository, with why and by whom.
hidden_findings = Table(
    "hidden_findings",
    metadata,
    Column("repository_id", Integer, ForeignKey("repositories.id", ondelete="CASCADE"), primary_key=True),
    Column("image_digest", DIGEST, primary_key=True),
    Column("vuln_id", String(255), primary_key=True),
    Column("package", String(512), primary_key=True),
    Column("reason", Text, nullable=False),
    Column("hidden_by", String(64), nullable=False),
    Column("hidden_at", Float, nullable=False),
)

# Content caches near users (dockyard.cache): registered by administrators, chosen per user, or as a default
# for an organization or a team. The main registry pings each one and redirects only to caches that answer.
caches = Table(
    "caches",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("name", String(64), nullable=False, unique=True),
    Column("url", String(2048), nullable=False),
    Column("ca_pem", Text, nullable=True),
    Column("created_at", Float, nullable=False),
    Column("healthy", Boolean, nullable=False, server_default=false()),
    Column("checked_at", Float, nullable=True),
    Column("last_error", Text, nullable=False, server_default=""),
    Column("stats", Text, nullable=False, server_default="{}"),
)

# A user's own choice, or an organization's default (accounts hold both).
account_caches = Table(
    "account_caches",
    metadata,
    Column("account_id", Integer, ForeignKey("accounts.id", ondelete="CASCADE"), primary_key=True),
    Column("cache_id", Integer, ForeignKey("caches.id", ondelete="CASCADE"), nullable=False),
)

team_caches = Table(
    "team_caches",
    metadata,
    Column("team_id", Integer, ForeignKey("teams.id", ondelete="CASCADE"), primary_key=True),
    Column("cache_id", Integer, ForeignKey("caches.id", ondelete="CASCADE"), nullable=False),
)

# Pushes and pulls per repository and UTC day (days since the epoch), added to as they happen: pushes in the
# push's transaction, pulls counted in each process's memory and added in periodic flushes.
daily_activity = Table(
    "daily_activity",
    metadata,
    Column("repository_id", Integer, ForeignKey("repositories.id", ondelete="CASCADE"), primary_key=True),
    Column("day", Integer, primary_key=True),
    Column("pushes", BigInteger, nullable=False, server_default="0"),
    Column("pulls", BigInteger, nullable=False, server_default="0"),
    Index("ix_daily_activity_day", "day"),
)

# A repository's visible findings by severity over its tagged images, as a periodic task saw them that day.
vulnerability_snapshots = Table(
    "vulnerability_snapshots",
    metadata,
    Column("repository_id", Integer, ForeignKey("repositories.id", ondelete="CASCADE"), primary_key=True),
    Column("day", Integer, primary_key=True),
    Column("critical", Integer, nullable=False, server_default="0"),
    Column("high", Integer, nullable=False, server_default="0"),
    Column("medium", Integer, nullable=False, server_default="0"),
    Column("low", Integer, nullable=False, server_default="0"),
    Column("unknown", Integer, nullable=False, server_default="0"),
    Index("ix_vulnerability_snapshots_day", "day"),
)

# Settings administrators change at run time, shared by every replica (JSON values by name).
system_settings = Table(
    "system_settings",
    metadata,
    Column("name", String(64), primary_key=True),
    Column("value", Text, nullable=False),
    Column("updated_at", Float, nullable=False),
    Column("updated_by", String(64), nullable=True),
)
