"""What a lock is, server side: the model (artifacts, components, the lock), reading and
sealing the lock file (file.py), the recipes and their same-version rule, and one module per
component kind in kinds/. Pure data: no network, no subprocess. May import core/ only."""
