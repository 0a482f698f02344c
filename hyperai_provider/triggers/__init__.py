"""Triggers: deferred waits that hold no worker slot."""
