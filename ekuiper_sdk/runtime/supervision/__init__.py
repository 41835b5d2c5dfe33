"""Supervision: the plugin's symbols served by a worker process that is restarted when it
dies (docs/reliability.md). Nothing in the rest of the runtime imports these modules but
the role picker (``runtime/roles.py``), so a plugin run as one process never loads them."""
