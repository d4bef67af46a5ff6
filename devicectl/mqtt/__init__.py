"""MQTT: the bridge to clinic systems and the shipped Mosquitto broker."""
