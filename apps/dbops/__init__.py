"""dbops: production-grade database operations for Django on PostgreSQL."""
