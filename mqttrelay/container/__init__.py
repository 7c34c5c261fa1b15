"""The container image's start: options and the Supervisor's MQTT service into config.yaml."""
