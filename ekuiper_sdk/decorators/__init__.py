"""The support of the decorator API (``Plugin`` in :mod:`ekuiper_sdk.app`): adapters that
turn functions, generators and plain classes into the official ``Source``, ``Sink`` and
``Function`` (:mod:`.adapters`), with their signatures checked (:mod:`.signatures`), sink
frames turned into records (:mod:`.records`) and ``async`` code run from the runtime's
threads (:mod:`.event_loops`). Imported only by plugins that use decorators."""
