"""mqttrelay: switch live-stream destinations on and off while live."""

__version__ = "0.1.0"
