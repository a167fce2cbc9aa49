"""CAN input: DBC loading, signal-role mapping (pure), python-can receive/transmit link.

- ``config``: ``CanConfig`` (the ``[can]`` settings).
- ``profile``: TOML signal maps binding DBC signals to roles (format in dbc/README.md).
- ``dbc``: strict cantools loading with errors that name the file and line.
- ``compiler``: the profile compiled against the DBC into per-frame, per-mux lookup tables.
- ``decode``: ``Decoder``, ``decode(frame_id, data, t_s)`` on those tables; ``load_decoder``.
- ``encode``: ``OutFrame`` and the balancing command's encoder (frames the gateway sends).
- ``link``: ``CanLink``, python-can on the event loop, with reconnect and transmit.

Import the submodules; this package keeps no state and imports nothing heavy.
"""
