"""The admin's "Database operations" dashboard: its data and its server-side SVG charts.

- `data`: `dashboard_data()`, from the same services the health endpoints and the alerts use.
- `charts`: line charts as inline SVG (no JavaScript, no CDN). The admin view in `dbops.admin` renders them.
"""
