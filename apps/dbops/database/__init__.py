"""The live database as dbops sees it: selectors over Django's native pool and the server itself.

- `pool`: pool stats and sizes per alias, bounded probe connections and direct connections for commands.
- `wrappers`: attaching execute wrappers once per DatabaseWrapper (receivers run on every checkout).
- `server`: what PostgreSQL says about itself (connections, long transactions, locks, replication), graded.
Every other capability reads the database through these; nothing here imports another dbops capability.
"""
