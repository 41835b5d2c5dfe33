"""The developer tools behind ``ekuiper-plugin``: the one reader of a plugin's manifest
(:mod:`.manifest`), validation (:mod:`.validate`), the zip and folder layouts
(:mod:`.archive`, :mod:`.pack`), vendored wheels (:mod:`.vendor`), the REST client
(:mod:`.rest`), project templates (:mod:`.templates`) and the command line (:mod:`.cli`).
They need only the standard library (jsonschema and PyYAML are used when installed); none
of them loads the socket library, except ``run``, which starts the built-in host."""
