"""Inverter link over Modbus/SunSpec: model 802 server and model 124/702 client."""
