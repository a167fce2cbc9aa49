"""CAN input: DBC loading, signal-role mapping (pure), python-can receive/transmit link."""
