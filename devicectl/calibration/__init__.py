"""Calibration: procedures, runs inside the service, records, certificates, the calibrate command."""
