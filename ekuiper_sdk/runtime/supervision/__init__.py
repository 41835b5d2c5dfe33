"""Supervision: the plugin's symbols served by a worker process that is restarted when it
dies (docs/reliability.md). Nothing in the rest of the runtime imports these modules but
``plugin.start``, and only for the part ``roles.decide`` picked, so a plugin run as one
process never loads them (tests/test_architecture.py keeps both true)."""
