"""Battery CAN to the inverter: Pylontech LV and HV, SMA Sunny Island and Victron dialects.

``config`` (``[inverter_can]``), ``alarms`` (the alarm-code to protocol-bit table), ``frames``
(profiles and DBC encoding), ``link`` (python-can transmit, keep-alive, HV polls).
``gateway.txlog`` writes the same frames for ``replay --tx-out``. The wire layouts are the
generated DBCs in ``dbc/``.
"""
