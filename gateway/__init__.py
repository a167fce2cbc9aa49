"""bms-gateway: CAN (DBC) in, BMS logic in a pure core, Modbus/SunSpec and MQTT out."""

__version__ = "0.1.0"
