"""Configuration: a site's settings -> one validated, frozen `DbopsConfig`; masking; PostgreSQL enforcement.

What it offers the rest of a site and of dbops:
- `from_env(base_dir=...)`: dbops' settings from environment variables (django-environ);
  `configure(databases=..., settings={...})`: the same settings from a site's own Python settings.
  Both enforce at settings load: staging/production refuse anything but PostgreSQL through psycopg 3 with
  Django's native pool, in one line naming the setting.
- `DbopsConfig.databases()`, `.middleware()`, `.database_routers()`, `.cache`: what a settings module adds.
- `get_config()`: how every other part of dbops reads the configuration (`settings.DBOPS`).
- `mask_url()`, `enforce_postgresql()`; `site_from_env()` for a site's own SECRET_KEY/DEBUG/ALLOWED_HOSTS.
"""

from dbops.conf.caches import cache_is_shared
from dbops.conf.config import (
    STRICT_ENVIRONMENTS,
    AlertConfig,
    BackupS3Config,
    BreakerConfig,
    DatabaseConfig,
    DbopsConfig,
    HealthConfig,
    LocalDbConfig,
    MigrationSafetyConfig,
    PitrConfig,
    PoolConfig,
    get_config,
)
from dbops.conf.databases import DBOPS_POSTGRES_ENGINE, enforce_postgresql, parse_database_url
from dbops.conf.loading import configure, from_env, parse_cache_url, read_dotenv
from dbops.conf.masking import mask_url
from dbops.conf.site import INSECURE_SECRET_KEY, SiteConfig, site_from_env

__all__ = [
    "DBOPS_POSTGRES_ENGINE",
    "INSECURE_SECRET_KEY",
    "STRICT_ENVIRONMENTS",
    "AlertConfig",
    "BackupS3Config",
    "BreakerConfig",
    "DatabaseConfig",
    "DbopsConfig",
    "HealthConfig",
    "LocalDbConfig",
    "MigrationSafetyConfig",
    "PitrConfig",
    "PoolConfig",
    "SiteConfig",
    "cache_is_shared",
    "configure",
    "enforce_postgresql",
    "from_env",
    "get_config",
    "mask_url",
    "parse_cache_url",
    "parse_database_url",
    "read_dotenv",
    "site_from_env",
]
