"""Management commands: one thin file per command over the services; shared output helpers beside them."""
