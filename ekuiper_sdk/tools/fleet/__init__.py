"""A plugin on many eKuiper servers: ``ekuiper-plugin rollout`` and ``fleet status``.

``inventory`` reads the fleet file, ``releases`` keeps the zips and what went where,
``health`` reads one server and gates a change on a settle window, ``plan`` decides each
server's part before anything changes, ``rollout`` runs the canary, the waves and the
rollback, ``status`` reports versions and drift, ``tables`` prints both for a person,
``parallel`` runs a step on many servers at once, and ``commands`` is the command line.

Example::

    $ ekuiper-plugin rollout demo.zip --fleet fleet.txt --parallel 10 --settle 30
"""
